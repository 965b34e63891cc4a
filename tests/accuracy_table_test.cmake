# The accuracy_table test (tests/CMakeLists.txt): the float32 U-Net and sampler parity cases run
# with DIFFBLOCKS_ACCURACY_REPORT set (tests/parity/device.hpp writes each comparison's max abs
# error as a JSON line), then tools/accuracy_report.py --check compares docs/accuracy.md's
# committed tables with those numbers (same cases, each error within 2x, same max abs outputs)
# and --self-test shows that doctored copies of the tables fail that check.
#   -DTESTS=diffblocks_tests -DPYTHON=python3 -DSCRIPT=tools/accuracy_report.py
#   -DDOC=docs/accuracy.md -DOUT=<the JSON lines file>
file(REMOVE "${OUT}")
execute_process(COMMAND ${CMAKE_COMMAND} -E env "DIFFBLOCKS_ACCURACY_REPORT=${OUT}" "${TESTS}"
                        "Origin (*,reverse_diffusion (ODE)*,Diffuser U-Net reproduces*,diffusers_sample:*"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the parity cases failed (exit ${rc}):\n${out}")
endif()
execute_process(COMMAND "${PYTHON}" "${SCRIPT}" --json "${OUT}" --check "${DOC}" --self-test
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "accuracy_table: ${DOC} disagrees with the measured errors (exit ${rc})")
endif()
