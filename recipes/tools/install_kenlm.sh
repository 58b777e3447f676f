#!/usr/bin/env bash
# KenLM's build_binary, compiled from the kenlm source package on PyPI (the C++ sources of
# github.com/kpu/kenlm, LGPL), into the bin/ folder of the Python that runs asr (a venv's bin/),
# where `asr lm binary` finds it. Needs a C++ compiler and zlib's headers
# (Debian: apt-get install g++ zlib1g-dev); about 30 s on 2 cores.
#
#   bash recipes/tools/install_kenlm.sh [DEST_DIR]
set -euo pipefail
python=${PYTHON:-python3}
dest=${1:-$("$python" -c "import sys, os; print(os.path.dirname(sys.executable))")}
version=0.3.0  # kenlm on PyPI; its sdist holds lm/ and util/ with build_binary_main.cc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation "kenlm==$version" -d "$work"
tar -xzf "$work/kenlm-$version.tar.gz" -C "$work"
cd "$work/kenlm-$version"
flags=(-I. -O3 -DNDEBUG -DKENLM_MAX_ORDER=6 -DHAVE_ZLIB)  # 6: flashlight-text's KenLM reads up to 6-grams
objects=()
for f in util/double-conversion/*.cc util/*.cc lm/*.cc; do
  case $f in *test.cc|*main.cc) continue ;; esac
  o=${f%.cc}.o
  ${CXX:-g++} "${flags[@]}" -w -c "$f" -o "$o" &
  objects+=("$o")
  [ "$(jobs -rp | wc -l)" -lt "$(nproc)" ] || wait -n
done
wait
${CXX:-g++} "${flags[@]}" -w lm/build_binary_main.cc "${objects[@]}" -o build_binary -lz -lrt
mkdir -p "$dest"
install -m 755 build_binary "$dest/build_binary"
echo "$dest/build_binary"
