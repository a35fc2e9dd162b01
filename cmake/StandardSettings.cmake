# mybackup_settings: an INTERFACE target every project target links privately.
# It carries the sanitizer flags and the standard library's own assertions in Debug builds.
add_library(mybackup_settings INTERFACE)
target_compile_definitions(mybackup_settings INTERFACE $<$<CONFIG:Debug>:_GLIBCXX_ASSERTIONS>)
if(MYBACKUP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MYBACKUP_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # libFuzzer's coverage instrumentation in every target (only the harnesses link its main, see
  # fuzz/), with the sanitizers below and the standard library's assertions in any build type.
  set(_fuzz_instrument fuzzer-no-link,)
  target_compile_definitions(mybackup_settings INTERFACE _GLIBCXX_ASSERTIONS)
endif()
if(MYBACKUP_SANITIZE OR MYBACKUP_FUZZ)
  set(_san -fsanitize=${_fuzz_instrument}address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_compile_options(mybackup_settings INTERFACE ${_san})
  target_link_options(mybackup_settings INTERFACE ${_san})
  # A sanitized position-independent binary carries millions of relative relocations (ASan's
  # global metadata): the loader spent 0.4 s of each 0.6 s `mybackup --help` applying them, and the
  # end-to-end tests start the binary hundreds of times. A fixed-address executable has none.
  target_link_options(mybackup_settings INTERFACE $<$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>:-no-pie>)
endif()
