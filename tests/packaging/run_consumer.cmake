# ctest driver for the packaging tests: configures, builds and runs tests/packaging/consumer in
# WORK_DIR (wiped first), using diffblocks one of three ways:
#   cmake -DMODE=find_package|subdirectory|fetchcontent -DSOURCE_DIR=<diffblocks source>
#         -DBUILD_DIR=<diffblocks build> -DWORK_DIR=<scratch> -DEXPECTED_VERSION=<x.y.z>
#         -DGENERATOR=<generator> -DCXX_COMPILER=<compiler> [-DCUDA_MODULE=ON] [-DFORWARDS=ON [-DNATIVE=ON]]
#         [-DC_API=ON -DC_COMPILER=<compiler>]
#         -P run_consumer.cmake
# FORWARDS=ON also builds the consumer's forward.cpp (the whole library, ~1 min at -O3; the
# warning check), NATIVE=ON with -march=native.
# find_package first runs the README's install command on a fresh configure of SOURCE_DIR (no
# build), then installs BUILD_DIR (the project's own build, with its CLI, examples and tests)
# into WORK_DIR/prefix and checks that only headers and the package files land there (and,
# with CUDA_MODULE, the runtime's CUDA module, which the consumer must then open; with C_API, the
# C API's library, which the consumer's c_consumer must then link through diffblocks::c, and
# which a C program built by hand must use from the moved prefix).
cmake_minimum_required(VERSION 3.16)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# pkg-config's --cflags --libs for MODULE at exactly EXPECTED_VERSION, found in DIR, as a list.
function(pkg_config_flags out dir module)
  run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${dir} ${PKG_CONFIG} --cflags --libs "${module} = ${EXPECTED_VERSION}")
  string(STRIP "${run_output}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  set(${out} "${flags}" PARENT_SCOPE)
endfunction()

# Every installed file must lie under one of the given prefixes (relative to ROOT).
function(check_installed root)
  file(GLOB_RECURSE files RELATIVE ${root} ${root}/*)
  if(NOT files)
    message(FATAL_ERROR "nothing was installed under ${root}")
  endif()
  foreach(f ${files})
    set(ok FALSE)
    foreach(allowed ${ARGN})
      if(f MATCHES "^${allowed}")
        set(ok TRUE)
      endif()
    endforeach()
    if(NOT ok)
      message(FATAL_ERROR "unexpected installed file ${root}/${f}")
    endif()
  endforeach()
endfunction()

foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR EXPECTED_VERSION GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
# Release: the optimiser's warnings (-Wmaybe-uninitialized and co.) fail the consumer's -Werror too.
set(args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DDIFFBLOCKS_MODE=${MODE}
    -DEXPECTED_VERSION=${EXPECTED_VERSION} -DCMAKE_BUILD_TYPE=Release -DCONSUMER_FORWARDS=${FORWARDS}
    -DCONSUMER_FIXTURES=${SOURCE_DIR}/tests/fixtures)
if(NATIVE)
  list(APPEND args -DCMAKE_CXX_FLAGS=-march=native)
endif()

if(MODE STREQUAL "find_package")
  # The README's install command as written: configure and install, building nothing. With nvcc
  # present the CUDA module's target exists but was not built; the install goes on without it.
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/readme-build -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
      -DDIFFBLOCKS_BUILD_TESTS=OFF -DDIFFBLOCKS_BUILD_EXAMPLES=OFF -DDIFFBLOCKS_BUILD_BENCHMARKS=OFF)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/readme-build --prefix ${WORK_DIR}/readme-prefix)
  if(NOT EXISTS ${WORK_DIR}/readme-prefix/share/cmake/diffblocks/diffblocksConfig.cmake)
    message(FATAL_ERROR "the README's install command did not install the package files")
  endif()
  check_installed(${WORK_DIR}/readme-prefix "include/diffblocks/" "share/cmake/diffblocks/" "share/pkgconfig/diffblocks\\.pc$")

  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  foreach(f include/diffblocks/diffblocks.hpp include/diffblocks/version.hpp
            share/cmake/diffblocks/diffblocksConfig.cmake share/cmake/diffblocks/diffblocksConfigVersion.cmake
            share/cmake/diffblocks/diffblocksTargets.cmake share/pkgconfig/diffblocks.pc)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "cmake --install did not install ${f}")
    endif()
  endforeach()
  # The runtime's CUDA module is installed with a CUDA build (lib/libdiffblocks_cuda.so), and
  # the consumer then opens it (its output says so, checked below).
  check_installed(${prefix} "include/diffblocks/" "share/cmake/diffblocks/" "share/pkgconfig/diffblocks\\.pc$"
                  "lib[^/]*/libdiffblocks_cuda\\.so$" "lib[^/]*/libdiffblocks_c\\.so(\\.[0-9]+)*$"
                  "lib[^/]*/pkgconfig/diffblocks-c\\.pc$")
  file(GLOB installed_c_api ${prefix}/lib*/libdiffblocks_c.so)
  if(C_API AND NOT installed_c_api)
    message(FATAL_ERROR "cmake --install did not install the C API's library (lib/libdiffblocks_c.so)")
  endif()
  file(GLOB installed_module ${prefix}/lib*/libdiffblocks_cuda.so)
  if(CUDA_MODULE AND NOT installed_module)
    message(FATAL_ERROR "cmake --install did not install the CUDA module (lib/libdiffblocks_cuda.so)")
  elseif(NOT CUDA_MODULE AND installed_module)
    message(FATAL_ERROR "a build without the CUDA module installed ${installed_module}")
  endif()
  list(APPEND args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
else()
  list(APPEND args -DDIFFBLOCKS_SOURCE_DIR=${SOURCE_DIR})
endif()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/packaging/consumer -B ${WORK_DIR}/build ${args})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
set(consumer_output "${run_output}")
if(MODE STREQUAL "find_package" AND C_API)
  if(NOT EXISTS ${WORK_DIR}/build/c_consumer)
    message(FATAL_ERROR "the package did not give the consumer diffblocks::c (no c_consumer was built)")
  endif()
  run(${WORK_DIR}/build/c_consumer)
  if(NOT run_output MATCHES "c_consumer: origin_a matches PyTorch.*c_consumer: diffblocks ${EXPECTED_VERSION}, C API OK")
    message(FATAL_ERROR "the C consumer did not run as expected:\n${run_output}")
  endif()
endif()
if(MODE STREQUAL "find_package" AND CUDA_MODULE AND NOT consumer_output MATCHES "CUDA module in [^\n]*'cuda' backend")
  message(FATAL_ERROR "the consumer did not open the installed CUDA module:\n${consumer_output}")
endif()

if(MODE STREQUAL "find_package")
  # The same consumer built without CMake, by the installed pkg-config file (moved prefix
  # included: the .pc finds its prefix from its own place).
  find_program(PKG_CONFIG pkg-config)
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config is not installed (tools/setup_debian.sh installs it)")
  endif()
  file(RENAME ${prefix} ${WORK_DIR}/moved-prefix)
  pkg_config_flags(pc_flags ${WORK_DIR}/moved-prefix/share/pkgconfig diffblocks)
  if(NOT pc_flags MATCHES "-I[^;]*moved-prefix")
    message(FATAL_ERROR "pkg-config's flags do not name the moved prefix's include directory: ${pc_flags}")
  endif()
  run(${CXX_COMPILER} -std=c++17 -O1 -Wall -Wextra -Werror -DEXPECTED_VERSION="${EXPECTED_VERSION}" -DCONSUMER_MODE="pkg-config"
      ${SOURCE_DIR}/tests/packaging/consumer/main.cpp ${pc_flags} -o ${WORK_DIR}/consumer_pkgconfig)
  run(${WORK_DIR}/consumer_pkgconfig)
  if(NOT run_output MATCHES "GroupNorm OK")
    message(FATAL_ERROR "the pkg-config consumer did not run as the CMake one:\n${run_output}")
  endif()
  if(C_API)
    # The C API from the moved prefix, without CMake: its pkg-config file (relocatable) gives
    # the header's and the library's directories.
    file(GLOB moved_c_api ${WORK_DIR}/moved-prefix/lib*/libdiffblocks_c.so)
    get_filename_component(moved_libdir "${moved_c_api}" DIRECTORY)
    pkg_config_flags(pc_c_flags ${moved_libdir}/pkgconfig diffblocks-c)
    if(NOT pc_c_flags MATCHES "-I[^;]*moved-prefix.*-L[^;]*moved-prefix.*-ldiffblocks_c")
      message(FATAL_ERROR "pkg-config's diffblocks-c flags do not name the moved prefix: ${pc_c_flags}")
    endif()
    run(${C_COMPILER} -std=c99 -Wall -Wextra -pedantic -Werror -DEXPECTED_VERSION="${EXPECTED_VERSION}"
        -DCONSUMER_FIXTURES="${SOURCE_DIR}/tests/fixtures" ${SOURCE_DIR}/tests/packaging/consumer/c_consumer.c
        ${pc_c_flags} -lm -Wl,-rpath,${moved_libdir} -o ${WORK_DIR}/c_consumer_moved)
    run(${WORK_DIR}/c_consumer_moved)
    if(NOT run_output MATCHES "c_consumer: origin_a matches PyTorch.*c_consumer: diffblocks ${EXPECTED_VERSION}, C API OK")
      message(FATAL_ERROR "the C consumer did not run from the moved prefix:\n${run_output}")
    endif()
  endif()
endif()

if(NOT MODE STREQUAL "find_package")
  # A parent project's install must not pick up diffblocks' headers or executables.
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/build --prefix ${WORK_DIR}/app-prefix)
  check_installed(${WORK_DIR}/app-prefix "bin/consumer$")
endif()
# Last, so that the test's pass pattern only appears when every step above succeeded.
message("${consumer_output}")
