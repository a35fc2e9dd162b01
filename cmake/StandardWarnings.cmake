# mybackup_warnings: the warning set every project target compiles with.
# Each flag is checked once against the compiler in use (the result is cached per flag), so a
# GCC-only warning such as -Wlogical-op is left out of a clang build instead of failing it.
include(CheckCXXCompilerFlag)

set(_mybackup_wanted_warnings
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  -Wmisleading-indentation -Wduplicated-cond -Wlogical-op)

set(_mybackup_warnings)
foreach(_flag IN LISTS _mybackup_wanted_warnings)
  # Only positive forms belong in the list: GCC accepts any unknown -Wno-... silently.
  string(MAKE_C_IDENTIFIER "MYBACKUP_CXX_ACCEPTS${_flag}" _accepted)
  check_cxx_compiler_flag(${_flag} ${_accepted})
  if(${_accepted})
    list(APPEND _mybackup_warnings ${_flag})
  endif()
endforeach()

add_library(mybackup_warnings INTERFACE)
target_compile_options(mybackup_warnings INTERFACE
  ${_mybackup_warnings}
  # GCC 12 reports false positives inside libstdc++ itself once optimizing (std::string
  # concatenation -> -Wrestrict, vector::insert -> -Wstringop-overflow; GCC bugs 105329, 106199).
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<NOT:$<CONFIG:Debug>>>:-Wno-restrict -Wno-stringop-overflow>
  $<$<BOOL:${MYBACKUP_WERROR}>:-Werror>)
