"""Reports, as one JSON object, what `cargo xtask test-image` checks in an image's files.

Runs inside the image as root (so no folder is hidden from it) with the image's own
python3. It only reads; the Rust side compares what it reports with the expectations.
Argument 1: a folder that must hold a baked model, or "" when the target bakes none.
"""
import glob
import importlib.metadata
import importlib.util
import json
import os
import sys


def tree_size(path):
    """Files and bytes under path (a file counts as one)."""
    if os.path.isfile(path):
        return 1, os.path.getsize(path)
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files += 1
                size += os.path.getsize(full)
    return files, size


def found(paths):
    """The given paths that hold at least one file, with their sizes."""
    result = []
    for path in sorted(set(paths)):
        if os.path.exists(path):
            files, size = tree_size(path)
            if files:
                result.append({"path": path, "files": files, "bytes": size})
    return result


def open_webui():
    try:
        import open_webui  # noqa: F401  (importable is what is checked)
    except Exception as error:  # any failure to import is the finding
        return {"error": f"{type(error).__name__}: {error}"}
    return {"version": importlib.metadata.version("open-webui")}


def torch():
    """torch's version and CUDA build, read from its files without importing it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    facts = {}
    version_file = os.path.join(list(spec.submodule_search_locations)[0], "version.py")
    with open(version_file, encoding="utf-8") as source:
        exec(compile(source.read(), version_file, "exec"), {}, facts)
    return {"version": str(facts.get("__version__")), "cuda": facts.get("cuda")}


homes = ["/root"] + glob.glob("/home/*") + [os.path.expanduser("~")]
cache_env = [os.environ.get(name) for name in ("PIP_CACHE_DIR", "UV_CACHE_DIR")]
xdg = os.environ.get("XDG_CACHE_HOME")
python_caches = [c for c in cache_env if c]
for base in [os.path.join(home, ".cache") for home in homes] + ([xdg] if xdg else []):
    python_caches += [os.path.join(base, "pip"), os.path.join(base, "uv")]

apt_lists = [p for p in glob.glob("/var/lib/apt/lists/*") if os.path.basename(p) not in ("lock", "partial")]
apt_lists += glob.glob("/var/lib/apt/lists/partial/*")
apt_caches = glob.glob("/var/cache/apt/*.bin") + glob.glob("/var/cache/apt/archives/*.deb")

model = sys.argv[1] if len(sys.argv) > 1 else ""
print(json.dumps({
    "python": sys.executable,
    "open_webui": open_webui(),
    "python_caches": found(python_caches),
    "apt": found(apt_lists + apt_caches),
    "torch": torch(),
    "baked_model": found([model])[0] if model and found([model]) else None,
}))
