#!/usr/bin/env bash
# Builds the texture bank of the motion benchmark (committed, so runs need neither tool):
# ImageMagick's built-in images and seeded plasma, and ffmpeg's lavfi pattern sources, 128×128 PNG.
# The first group is the development set's, the second the held-out set's (docs/results.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/textures"
S=128
im() { convert "$@" -resize ${S}x${S}! -strip "png24:$OUT"; }
lavfi() { ffmpeg -hide_banner -loglevel error -f lavfi -i "$1" -frames:v 1 -pix_fmt rgb24 -y "$OUT"; }
# development
OUT=dev-rose.png im rose:
OUT=dev-granite.png im granite:
OUT=dev-plasma1.png im -size ${S}x${S} -seed 11 plasma:fractal
OUT=dev-plasma2.png im -size ${S}x${S} -seed 12 plasma:green-yellow
OUT=dev-mandelbrot.png lavfi "mandelbrot=size=${S}x${S}:start_scale=2.5"
OUT=dev-cellauto.png lavfi "cellauto=size=${S}x${S}:rule=30:seed=3"
# held out
OUT=held-wizard.png im wizard:
OUT=held-netscape.png im netscape:
OUT=held-plasma3.png im -size ${S}x${S} -seed 21 plasma:fractal
OUT=held-plasma4.png im -size ${S}x${S} -seed 22 plasma:tomato-steelblue
OUT=held-life.png lavfi "life=size=${S}x${S}:seed=5:mold=10:ratio=0.5:life_color=#c08040:death_color=#203050"
OUT=held-gradients.png lavfi "gradients=size=${S}x${S}:seed=7:nb_colors=5"
