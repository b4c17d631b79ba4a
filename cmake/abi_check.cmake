# The ABI guard (CTest test `abi`; target `abi-baseline`), run as
#   cmake -DLIB=<libat.so with debug info> -DSONAME=libat.so.X -DHEADERS=include
#         -DBASELINE_DIR=cmake/abi -DOUT=<file> -DABIDW=abidw -DABIDIFF=abidiff
#         [-DUPDATE=ON] -P cmake/abi_check.cmake
#
# The library's ABI as libabigail sees it (abidw over its DWARF, public types
# only: those of the headers in HEADERS) is compared with the committed
# baseline BASELINE_DIR/<SONAME>.abi by `abidiff --no-added-syms`. It fails on
# anything but additions: a function removed, a signature or a public struct
# changed, an enumerator renumbered. New functions and enumerators added at
# the end of an enum are compatible and pass (abidiff files the latter as
# harmless). With -DUPDATE=ON the baseline is rewritten instead (see
# docs/abi.md for when that is right).
cmake_minimum_required(VERSION 3.18)

foreach(_v LIB SONAME HEADERS BASELINE_DIR OUT ABIDW)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "abi_check.cmake: -D${_v}=... is required")
    endif()
endforeach()

# Locations are reduced to file names so that the baseline does not depend on
# where the tree was built; internal types (at_model, at_config) stay opaque.
execute_process(
    COMMAND "${ABIDW}" --headers-dir "${HEADERS}" --drop-private-types --exported-interfaces-only --no-corpus-path
            --no-comp-dir-path --short-locs --out-file "${OUT}" "${LIB}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "abidw failed (${_rc}) on ${LIB}:\n${_out}${_err}")
endif()

set(_baseline "${BASELINE_DIR}/${SONAME}.abi")
if(UPDATE)
    file(MAKE_DIRECTORY "${BASELINE_DIR}")
    configure_file("${OUT}" "${_baseline}" COPYONLY)
    message(STATUS "ABI baseline written: ${_baseline} (commit it)")
    return()
endif()

if(NOT DEFINED ABIDIFF OR "${ABIDIFF}" STREQUAL "")
    message(FATAL_ERROR "abi_check.cmake: -DABIDIFF=... is required")
endif()
if(NOT EXISTS "${_baseline}")
    message(FATAL_ERROR
        "no ABI baseline for ${SONAME} (${_baseline}). A new SONAME starts a new ABI: "
        "write its baseline with `cmake --build <build> --target abi-baseline` and "
        "commit it (docs/abi.md).")
endif()

execute_process(
    COMMAND "${ABIDIFF}" --no-added-syms "${_baseline}" "${OUT}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
# abidiff's status is a bit field: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible change (a symbol removed). Additions are not counted under
# --no-added-syms, so any bit set here is a failure.
if(NOT _rc EQUAL 0)
    set(_why "")
    if(_rc GREATER_EQUAL 8)
        set(_why " (incompatible: a symbol was removed)")
    endif()
    message(FATAL_ERROR
        "ABI check failed: ${LIB} differs from the baseline ${_baseline}, "
        "abidiff status ${_rc}${_why}.\n${_out}${_err}\n"
        "A change of this kind breaks programs built against libat ${SONAME}. Undo it "
        "(add a new function instead of changing one; grow enums only at the end), or "
        "make it an ABI break: bump AT_VERSION_MAJOR, which changes the SONAME, and write "
        "the new baseline (docs/abi.md).")
endif()

# The additions, for the record (they do not fail the check).
execute_process(
    COMMAND "${ABIDIFF}" --stat "${_baseline}" "${OUT}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
message(STATUS "ABI of ${SONAME} compatible with ${_baseline}")
if(NOT _out STREQUAL "")
    message(STATUS "changes since the baseline (additions only):\n${_out}")
endif()
