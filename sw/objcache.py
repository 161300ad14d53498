"""A compiler cache for the objects every Verilator model build compiles again.

Each Verilator build (one per design and option set: about forty in the test suite) compiles
the same run-time library (``verilated.cpp``, ``verilated_vpi.cpp``, ...) and cocotb's
``verilator.cpp``: about 14 CPU-seconds a build, at ``-O0``. :func:`sw.toolchain.use_toolchain`
puts this script in front of the compiler (``OBJCACHE``, the prefix ``verilated.mk`` gives
every compile command), and it keeps those objects in ``build/objcache``.

Only a command ``... -MMD ... -c -o NAME.o SOURCE`` whose source is outside the current folder
(the model's) is cached; every other command runs as it is. The cache works like ccache's
direct mode: the key is the command (with the output's name) and the source's contents; the
entry lists every file the compile read (from its ``-MMD`` dependency file) with its hash, and
is used only if each of them is unchanged. A hit copies the object and its dependency file.
Entries are written to a temporary name and renamed, so parallel builds never see half of one.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / "build" / "objcache"


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _dependencies(depfile):
    """The files a ``-MMD`` dependency file names (the target excluded)."""
    text = Path(depfile).read_text().replace("\\\n", " ")
    return text.split(":", 1)[1].split()


def _cacheable(args):
    """(source, object) when ``args`` compiles one outside source to an object, else None."""
    if "-c" not in args or "-MMD" not in args or "-o" not in args:
        return None
    obj = args[args.index("-o") + 1]
    source = args[-1]
    if not obj.endswith(".o") or "/" in obj or not source.endswith(".cpp"):
        return None
    if not os.path.isabs(source) or Path(source).parent == Path.cwd():
        return None
    return source, obj


def _store(path, data):
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(args):
    found = _cacheable(args)
    if found is None:
        return subprocess.call(args)
    source, obj = found
    depfile = obj[:-2] + ".d"
    key = hashlib.sha256(json.dumps([args, _digest(source)]).encode()).hexdigest()[:32]
    entry = CACHE / key
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        if all(Path(p).is_file() and _digest(p) == h for p, h in manifest.items()):
            shutil.copyfile(entry / "object.o", obj)
            shutil.copyfile(entry / "object.d", depfile)
            return 0
    except (OSError, ValueError):
        pass
    code = subprocess.call(args)
    if code == 0:
        try:
            manifest = {p: _digest(p) for p in _dependencies(depfile)}
            entry.mkdir(parents=True, exist_ok=True)
            _store(entry / "object.o", Path(obj).read_bytes())
            _store(entry / "object.d", Path(depfile).read_bytes())
            _store(entry / "manifest.json", json.dumps(manifest).encode())  # last: valid
        except OSError:
            pass  # a cache that cannot be written only costs time
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
