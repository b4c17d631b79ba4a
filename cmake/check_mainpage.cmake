# The main page check (CTest test `mainpage`), run as
#   cmake -DINCLUDE_DIR=include -DMAINPAGE=docs/mainpage.md -P cmake/check_mainpage.cmake
#
# Every Doxygen group of the public headers (@defgroup NAME) must be listed on
# the main page of the reference (as @ref NAME), so a new area of the API
# cannot be left out of its table of contents.
cmake_minimum_required(VERSION 3.18)

foreach(_v INCLUDE_DIR MAINPAGE)
    if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
        message(FATAL_ERROR "check_mainpage.cmake: -D${_v}=... is required")
    endif()
endforeach()

file(READ "${MAINPAGE}" _page)
file(GLOB _headers "${INCLUDE_DIR}/*.h")
set(_groups)
set(_missing)
foreach(_h IN LISTS _headers)
    file(STRINGS "${_h}" _lines REGEX "@defgroup[ \t]+[A-Za-z0-9_]+")
    foreach(_line IN LISTS _lines)
        string(REGEX MATCH "@defgroup[ \t]+([A-Za-z0-9_]+)" _m "${_line}")
        set(_g "${CMAKE_MATCH_1}")
        list(APPEND _groups "${_g}")
        if(NOT _page MATCHES "@ref[ \t]+${_g}([^A-Za-z0-9_]|$)")
            get_filename_component(_hn "${_h}" NAME)
            list(APPEND _missing "${_g} (${_hn})")
        endif()
    endforeach()
endforeach()

list(LENGTH _groups _n)
if(_n EQUAL 0)
    message(FATAL_ERROR "no @defgroup found in ${INCLUDE_DIR}/*.h")
endif()
if(_missing)
    list(JOIN _missing ", " _list)
    message(FATAL_ERROR "groups missing from ${MAINPAGE} (add `@ref NAME` to its table): ${_list}")
endif()
message(STATUS "all ${_n} groups of the public headers are on the main page")
