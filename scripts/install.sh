#!/usr/bin/env bash
# Installs ocrapp and everything its tests need on a fresh Debian machine (run as root or with sudo):
# poppler (pdf2image, pdftotext), document and printer fonts (data engine and tests), then a venv with the package.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends poppler-utils fonts-liberation fonts-dejavu-core \
    fonts-dejavu-extra fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea fonts-noto-core \
    fonts-freefont-ttf >/dev/null
# Printer-like monospaced faces for the data engine's till-receipt words (training/data/fonts.PRINTER_FACE_DIRS).
$SUDO apt-get install -y -qq --no-install-recommends fonts-spleen fonts-mplus fonts-league-mono fonts-jetbrains-mono \
    fonts-hack fonts-firacode fonts-monoid fonts-inconsolata fonts-3270 fonts-glasstty fonts-agave \
    fonts-anonymous-pro >/dev/null
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU machines carry these wheels on disk; a plain "torch" could otherwise pull a multi-GB CUDA build.
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[train,test]"
echo "ocrapp installed: . .venv/bin/activate && ocrapp --help"
