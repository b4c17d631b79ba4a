#!/bin/sh
# The packaging check (CTest test `consumers`): install libat from a build
# tree into a fresh prefix, then build and run, against that prefix only,
#   - tests/consumers/cmake: find_package(libat), shared and static;
#   - tests/consumers/make: a plain Makefile with pkg-config;
#   - examples/cpp: the C++ host, with find_package (when a C++ compiler is given);
# and run the installed attn program.
#
#   sh tests/consumers/run.sh BUILD_DIR WORK_DIR CMAKE CC [CXX]
set -eu
build=$1
work=$2
cmake=$3
cc=$4
cxx=${5:-}
src=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
say() { printf 'consumers: %s\n' "$*"; }

say "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
pc=$(find "$prefix" -name libat.pc | head -n 1)
[ -n "$pc" ] || { say "no libat.pc installed"; exit 1; }
"$prefix/bin/attn" --version

say "CMake project with find_package(libat)"
"$cmake" -S "$src/tests/consumers/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log"
"$cmake" --build "$work/cmake" >>"$work/cmake.log"
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
# The shared one really uses the installed library.
if command -v ldd >/dev/null 2>&1; then
    ldd "$work/cmake/consumer_shared" | grep -F "$prefix/" | grep -q libat.so ||
        { say "consumer_shared does not load libat from $prefix"; exit 1; }
fi

say "Makefile with pkg-config ($(dirname "$pc"))"
mkdir -p "$work/make"
PKG_CONFIG_PATH=$(dirname "$pc") make -s -f "$src/tests/consumers/make/Makefile" \
    -C "$work/make" CC="$cc"
"$work/make/consumer"

if [ -n "$cxx" ]; then
    say "examples/cpp with find_package(libat)"
    "$cmake" -S "$src/examples/cpp" -B "$work/cpp" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release >"$work/cpp.log"
    "$cmake" --build "$work/cpp" >>"$work/cpp.log"
    "$work/cpp/cpp_host" >/dev/null
fi
say "all passed"
