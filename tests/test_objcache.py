"""The object cache in front of Verilator's compiles (sw/objcache.py): a hit gives the very
object the compiler made, a changed source or header compiles again, and everything else
(the model's own sources, precompiled headers) always runs the compiler."""

import sys
import textwrap

import pytest

from sw import objcache

#: A stand-in compiler: the object is the source and the header concatenated, the dependency
#: file names both; each run appends a line to ``runs``.
FAKE_CXX = textwrap.dedent("""
    import sys
    from pathlib import Path
    args = sys.argv[1:]
    with open("runs", "a") as runs:
        runs.write(" ".join(args) + "\\n")
    obj, source = args[args.index("-o") + 1], args[-1]
    header = Path(source).with_name("lib.h")
    Path(obj).write_bytes(Path(source).read_bytes() + header.read_bytes())
    Path(obj[:-2] + ".d").write_text(f"{obj}: {source} \\\\\\n {header}\\n")
""")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    lib, model = tmp_path / "lib", tmp_path / "model"
    lib.mkdir()
    model.mkdir()
    (lib / "lib.cpp").write_text("source-1;")
    (lib / "lib.h").write_text("header-1;")
    (tmp_path / "cxx.py").write_text(FAKE_CXX)
    monkeypatch.setattr(objcache, "CACHE", tmp_path / "cache")
    monkeypatch.chdir(model)
    command = [sys.executable, str(tmp_path / "cxx.py"), "-Os", "-MMD", "-c", "-o", "lib.o",
               str(lib / "lib.cpp")]
    return lib, model, command


def runs(model):
    return len((model / "runs").read_text().splitlines())


def test_hit_copies_the_object_and_its_dependencies(setup):
    lib, model, command = setup
    assert objcache.main(command) == 0 and runs(model) == 1
    made = (model / "lib.o").read_bytes()
    assert made == b"source-1;header-1;"
    (model / "lib.o").unlink()
    (model / "lib.d").unlink()
    assert objcache.main(command) == 0 and runs(model) == 1  # from the cache
    assert (model / "lib.o").read_bytes() == made
    assert str(lib / "lib.h") in (model / "lib.d").read_text()


def test_changed_header_source_or_flags_compile_again(setup):
    lib, model, command = setup
    objcache.main(command)
    (lib / "lib.h").write_text("header-2;")
    objcache.main(command)
    assert runs(model) == 2 and (model / "lib.o").read_bytes() == b"source-1;header-2;"
    (lib / "lib.cpp").write_text("source-2;")
    objcache.main(command)
    assert runs(model) == 3 and (model / "lib.o").read_bytes() == b"source-2;header-2;"
    objcache.main(command[:2] + ["-O0"] + command[2:])
    assert runs(model) == 4
    objcache.main(command)  # every version stays cached
    assert runs(model) == 4 and (model / "lib.o").read_bytes() == b"source-2;header-2;"


def test_model_sources_and_other_commands_always_compile(setup):
    lib, model, command = setup
    (model / "Vtop.cpp").write_text("model;")
    (model / "lib.h").write_text("h;")
    local = command[:-1] + [str(model / "Vtop.cpp")]
    no_output = [c for c in command if c not in ("-o", "lib.o")]
    for _ in range(2):
        objcache.main(local)
    assert runs(model) == 2
    assert not objcache._cacheable(no_output)
    assert not objcache._cacheable([c for c in command if c != "-MMD"])
    assert objcache._cacheable(command) == (str(lib / "lib.cpp"), "lib.o")


def test_failed_compile_is_not_cached(setup):
    lib, model, command = setup
    failing = [sys.executable, "-c", "import sys; sys.exit(3)", "-MMD", "-c", "-o", "lib.o",
               str(lib / "lib.cpp")]
    assert objcache.main(failing) == 3
    assert not (objcache.CACHE).exists()
