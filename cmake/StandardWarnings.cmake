# mybackup_warnings: the warning set every project target compiles with.
add_library(mybackup_warnings INTERFACE)
target_compile_options(mybackup_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  -Wmisleading-indentation -Wduplicated-cond -Wlogical-op
  # GCC 12 reports false positives inside libstdc++ itself once optimizing (std::string
  # concatenation -> -Wrestrict, vector::insert -> -Wstringop-overflow; GCC bugs 105329, 106199).
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<NOT:$<CONFIG:Debug>>>:-Wno-restrict -Wno-stringop-overflow>
  $<$<BOOL:${MYBACKUP_WERROR}>:-Werror>)
