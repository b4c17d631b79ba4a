# The allocation-failure test (tests/alloc/alloc_fail.c) sees only the
# allocation functions it wraps. This fails when the library's objects call
# an allocating function of the C library that is not among them.
#   cmake -DNM=nm -DOBJECTS="a.o|b.o" -DWRAPPED="malloc|free|..." -P check_alloc_wrapped.cmake
cmake_minimum_required(VERSION 3.18)
string(REPLACE "|" ";" _objects "${OBJECTS}")
string(REPLACE "|" ";" WRAPPED "${WRAPPED}")
# C library functions that return memory the caller frees
set(_allocating malloc calloc realloc reallocarray aligned_alloc posix_memalign memalign
    valloc pvalloc strdup strndup wcsdup asprintf vasprintf open_memstream open_wmemstream
    getline getdelim realpath canonicalize_file_name scandir tempnam get_current_dir_name
    getcwd backtrace_symbols)
set(_bad)
set(_seen)
foreach(_o IN LISTS _objects)
    execute_process(COMMAND "${NM}" -u "${_o}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "${NM} -u ${_o} failed")
    endif()
    string(REGEX MATCHALL "U [A-Za-z_0-9]+" _syms "${_out}")
    foreach(_s IN LISTS _syms)
        string(SUBSTRING "${_s}" 2 -1 _name)
        if(_name IN_LIST _allocating)
            list(APPEND _seen ${_name})
            if(NOT _name IN_LIST WRAPPED)
                get_filename_component(_f "${_o}" NAME)
                list(APPEND _bad "${_name} (${_f})")
            endif()
        endif()
    endforeach()
endforeach()
list(REMOVE_DUPLICATES _seen)
if(_bad)
    message(FATAL_ERROR "the library calls allocating functions that tests/alloc/alloc_fail.c "
                        "does not wrap: ${_bad}; add them to AT_WRAPPED_ALLOC in "
                        "tests/CMakeLists.txt and a __wrap_ function to alloc_fail.c")
endif()
if(NOT _seen)
    message(FATAL_ERROR "no allocation function found in ${OBJECTS}: is NM (${NM}) right?")
endif()
message(STATUS "allocating functions the library calls, all wrapped: ${_seen}")
