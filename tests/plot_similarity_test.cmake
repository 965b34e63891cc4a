# End to end: diffblocks sample (demo decoder) -> diffblocks similarity -> JSON ->
# tools/plot_similarity.py -> PNG, for a short (10) and a long (60 phonemes) utterance; checks
# that each PNG is a real PNG of a sensible size and that the long figure is the wider one.
# Run by ctest as: cmake -DCLI=... -DPYTHON=... -DPLOT=... -DMODEL=... -DINPUTS=... -DWORK=... -P this
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(ENV{MPLCONFIGDIR} "${WORK}/mplconfig")  # matplotlib's cache: never outside the build tree

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}${err}")
  endif()
endfunction()

# Reference: 4 ODE steps; candidates: 1 and 2 steps (fast, and visibly different).
foreach(steps 4 1 2)
  run("${CLI}" sample --model "${MODEL}" --inputs "${INPUTS}" --output "${WORK}/ode${steps}.safetensors" --steps ${steps})
endforeach()

# N phonemes spread over the demo's 172 frames: d_i = floor((i+1)T/N) - floor(iT/N).
function(make_alignment n symbols_var durations_var)
  set(arpabet DH AH B ER CH K N UW S L IH D AA P M IY T Z G R AE NG SH W)
  list(LENGTH arpabet na)
  set(sym "")
  set(dur "")
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    math(EXPR k "${i} % ${na}")
    list(GET arpabet ${k} s)
    math(EXPR d "(${i} + 1) * 172 / ${n} - ${i} * 172 / ${n}")
    list(APPEND sym ${s})
    list(APPEND dur ${d})
  endforeach()
  string(REPLACE ";" " " sym "${sym}")
  set(${symbols_var} "${sym}" PARENT_SCOPE)
  set(${durations_var} "${dur}" PARENT_SCOPE)
endfunction()

function(png_size path w_var h_var)
  file(SIZE "${path}" bytes)
  file(READ "${path}" head LIMIT 24 HEX)
  string(SUBSTRING "${head}" 0 16 magic)
  if(NOT magic STREQUAL "89504e470d0a1a0a")
    message(FATAL_ERROR "${path} is not a PNG (starts with ${magic})")
  endif()
  string(SUBSTRING "${head}" 24 8 chunk)  # the first chunk must be IHDR: width, height follow
  if(NOT chunk STREQUAL "49484452")
    message(FATAL_ERROR "${path}: first PNG chunk is not IHDR")
  endif()
  string(SUBSTRING "${head}" 32 8 w)
  string(SUBSTRING "${head}" 40 8 h)
  math(EXPR w "0x${w}")
  math(EXPR h "0x${h}")
  if(bytes LESS 20000 OR bytes GREATER 5000000 OR w LESS 900 OR h LESS 500)
    message(FATAL_ERROR "${path}: implausible figure: ${w}x${h} pixels, ${bytes} bytes")
  endif()
  message(STATUS "${path}: ${w}x${h} pixels, ${bytes} bytes")
  set(${w_var} ${w} PARENT_SCOPE)
  set(${h_var} ${h} PARENT_SCOPE)
endfunction()

foreach(n 10 60)
  make_alignment(${n} symbols durations)
  if(n EQUAL 60)  # the long one reads its durations from a file, one per line
    string(REPLACE ";" "\n" lines "${durations}")
    file(WRITE "${WORK}/durations${n}.txt" "${lines}\n")
    set(durations "${WORK}/durations${n}.txt")
  else()
    string(REPLACE ";" "," durations "${durations}")
  endif()
  run("${CLI}" similarity --reference "${WORK}/ode4.safetensors"
      --candidates "${WORK}/ode1.safetensors,${WORK}/ode2.safetensors" --labels "ODE 1 step,ODE 2 steps"
      --durations "${durations}" --phonemes "${symbols}" --title "Plot test, ${n} phonemes"
      --subtitle "demo decoder vs a 4-step reference" --output "${WORK}/sim${n}.json")
  run("${PYTHON}" "${PLOT}" "${WORK}/sim${n}.json" -o "${WORK}/sim${n}.png")
  png_size("${WORK}/sim${n}.png" w${n} h${n})
endforeach()
if(NOT w60 GREATER w10)
  message(FATAL_ERROR "the 60-phoneme figure (${w60} px) should be wider than the 10-phoneme one (${w10} px)")
endif()
