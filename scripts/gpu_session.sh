#!/usr/bin/env bash
# The whole lent-GPU session, run on the device machine from the repository root (see scripts/gpu_session.md):
#   bash scripts/gpu_session.sh [MINUTES [gpu_run options, e.g. --model detector]]   (OUT: the tool's output folder)
# Unpacks what `python scripts/gpu_pack.py` put in .gpu/ (packages, fonts, poppler, PDFs), then runs
# `python -m ocrapp.training.gpu_run`: benchmark, then the weakest model's recipe, MINUTES (default 8) in all.
# GPU_PACK names the pack folder (default .gpu; `gpu_pack.py --dir` writes another, for a second call).
set -uo pipefail
OUT=${OUT:-/tmp/ocrapp_gpu_out}
MINUTES=${1:-8}
SITE=/tmp/ocrapp_site FONTS=/tmp/ocrapp_fonts POPPLER=/tmp/ocrapp_poppler PDFS=/tmp/ocrapp_pdfs
PY=$(command -v python3)
mkdir -p "$OUT" "$SITE" "$FONTS" "$POPPLER"
PACK=${GPU_PACK:-.gpu}
[ -d "$PACK" ] || { echo "no $PACK/ here: run python scripts/gpu_pack.py and carry $PACK"; exit 2; }
tar xzf "$PACK/site.tar.gz" -C "$SITE" || exit 3
if compgen -G "$PACK/whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$PACK"/whl/*.whl || exit 3
fi
EXTRA=()
if [ -f "$PACK"/pdfs.tar ]; then  # gpu_pack --model recognizer: real PDFs for the recipe's real-word crops
  mkdir -p "$PDFS" && tar xf "$PACK"/pdfs.tar -C "$PDFS" && EXTRA=(--pdfs "$PDFS") || exit 3
fi
tar xzf "$PACK"/fonts.tar.gz -C "$FONTS" || exit 3
if ! command -v pdftotext >/dev/null && [ -f "$PACK"/poppler.tar.gz ]; then
  tar xzf "$PACK"/poppler.tar.gz -C "$POPPLER" && export PATH="$POPPLER/bin:$PATH"
fi
# a .pth file (not PYTHONPATH, which some recipes reset for their subprocesses) puts the carried packages and the
# repository on every python3's path; the machine's own packages stay first
echo -e "$SITE\n$PWD" > "$("$PY" -c 'import site; print(site.getsitepackages()[0])')/ocrapp_carried.pth" || exit 3
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader || true
IMPORTS=$(cat "$PACK"/imports.txt 2>/dev/null || echo "torch open_clip doctr shapely reportlab wordfreq ocrapp.pipeline")
"$PY" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; import torch
print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" $IMPORTS || exit 4
pdftotext -v 2>&1 | head -1
exec "$PY" -m ocrapp.training.gpu_run --out "$OUT" --minutes "$MINUTES" --fonts "$FONTS" "${EXTRA[@]}" "${@:2}"
