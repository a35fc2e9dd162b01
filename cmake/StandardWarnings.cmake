# mybackup_warnings: the warning set every project target compiles with.
add_library(mybackup_warnings INTERFACE)
target_compile_options(mybackup_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  -Wmisleading-indentation -Wduplicated-cond -Wlogical-op
  $<$<BOOL:${MYBACKUP_WERROR}>:-Werror>)
