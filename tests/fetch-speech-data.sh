#!/usr/bin/env bash
# Real speech for tests and benchmarks: Debian's festvox-ru voice (620 recordings with
# transcripts and phone labels). `make test` installs the package (the demo speaks with it);
# elsewhere it is unpacked into .cache/ without installing festival.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d /usr/share/festival/voices/russian/msu_ru_nsh_clunits/lab ]; then
    exit 0
fi
dest=.cache/festvox-ru
if [ -d "$dest/usr/share/festival/voices/russian/msu_ru_nsh_clunits/lab" ]; then
    exit 0
fi
mkdir -p .cache/deb
( cd .cache/deb && { apt-get download festvox-ru >/dev/null 2>&1 || { apt-get update -qq && apt-get download festvox-ru; }; } )
rm -rf "$dest.tmp" && dpkg -x .cache/deb/festvox-ru_*.deb "$dest.tmp" && mv "$dest.tmp" "$dest"
rm -f .cache/deb/festvox-ru_*.deb
echo "speech data: $(ls "$dest"/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav | wc -l) recordings in $dest"
