# The ABI guard (CTest test `abi`; target `abi-baseline`), run as
#   cmake -DLIB=<libat.so with debug info> -DSONAME=libat.so.X -DHEADERS=include
#         -DBASELINE_DIR=cmake/abi -DOUT=<file> -DABIDW=abidw -DABIDIFF=abidiff
#         [-DUPDATE=ON] -P cmake/abi_check.cmake
#
# LIB, SONAME and OUT may be lists separated by '|' (libat.so and
# libat_text.so are checked by one run): each library is checked against
# its own baseline, and the run fails if any of them fails.
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

function(at_abi_check_one _lib _soname _out_file)
    # Locations are reduced to file names so that the baseline does not depend on
    # where the tree was built; internal types (at_model, at_config) stay opaque.
    execute_process(
        COMMAND "${ABIDW}" --headers-dir "${HEADERS}" --drop-private-types --exported-interfaces-only --no-corpus-path
                --no-comp-dir-path --short-locs --out-file "${_out_file}" "${_lib}"
        RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "abidw failed (${_rc}) on ${_lib}:\n${_out}${_err}")
    endif()

    set(_baseline "${BASELINE_DIR}/${_soname}.abi")
    if(UPDATE)
        file(MAKE_DIRECTORY "${BASELINE_DIR}")
        configure_file("${_out_file}" "${_baseline}" COPYONLY)
        message(STATUS "ABI baseline written: ${_baseline} (commit it)")
        return()
    endif()

    if(NOT DEFINED ABIDIFF OR "${ABIDIFF}" STREQUAL "")
        message(FATAL_ERROR "abi_check.cmake: -DABIDIFF=... is required")
    endif()
    if(NOT EXISTS "${_baseline}")
        message(FATAL_ERROR
            "no ABI baseline for ${_soname} (${_baseline}). A new SONAME starts a new ABI: "
            "write its baseline with `cmake --build <build> --target abi-baseline` and "
            "commit it (docs/abi.md).")
    endif()

    execute_process(
        COMMAND "${ABIDIFF}" --no-added-syms "${_baseline}" "${_out_file}"
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
            "ABI check failed: ${_lib} differs from the baseline ${_baseline}, "
            "abidiff status ${_rc}${_why}.\n${_out}${_err}\n"
            "A change of this kind breaks programs built against libat ${_soname}. Undo it "
            "(add a new function instead of changing one; grow enums only at the end), or "
            "make it an ABI break: bump AT_VERSION_MAJOR, which changes the SONAME, and write "
            "the new baseline (docs/abi.md).")
    endif()

    # The additions, for the record (they do not fail the check).
    execute_process(
        COMMAND "${ABIDIFF}" --stat "${_baseline}" "${_out_file}"
        RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    message(STATUS "ABI of ${_soname} compatible with ${_baseline}")
    if(NOT _out STREQUAL "")
        message(STATUS "changes since the baseline (additions only):\n${_out}")
    endif()
endfunction()

string(REPLACE "|" ";" _libs "${LIB}")
string(REPLACE "|" ";" _sonames "${SONAME}")
string(REPLACE "|" ";" _outs "${OUT}")
list(LENGTH _libs _nlibs)
list(LENGTH _sonames _nsonames)
list(LENGTH _outs _nouts)
if(NOT _nlibs EQUAL _nsonames OR NOT _nlibs EQUAL _nouts)
    message(FATAL_ERROR "abi_check.cmake: LIB, SONAME and OUT must list as many items")
endif()
math(EXPR _last "${_nlibs} - 1")
foreach(_i RANGE ${_last})
    list(GET _libs ${_i} _l)
    list(GET _sonames ${_i} _s)
    list(GET _outs ${_i} _o)
    at_abi_check_one("${_l}" "${_s}" "${_o}")
endforeach()
