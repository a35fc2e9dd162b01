# What `cmake --install BUILD [--prefix DIR]` puts where (GNUInstallDirs; DESTDIR stages it):
#   ${CMAKE_INSTALL_BINDIR}/mybackup                 (apps/mybackup/CMakeLists.txt)
#   ${MYBACKUP_INSTALL_SYSTEMD_USER_UNITDIR}/*.service  the systemd user units from config/
#   ${CMAKE_INSTALL_DOCDIR}/                         README.md, format.md

# Not under CMAKE_INSTALL_LIBDIR: Debian's is multiarch (lib/x86_64-linux-gnu), and systemd reads
# user units from <prefix>/lib/systemd/user (/usr/lib/systemd/user on Debian).
set(MYBACKUP_INSTALL_SYSTEMD_USER_UNITDIR lib/systemd/user CACHE STRING
    "Directory of the installed systemd user units, relative to the prefix unless absolute")

# The units name the installed binary in ExecStart. `cmake --install --prefix` may move it after
# configuring, so config/*.service.in are substituted at install time, with the prefix of the
# install; the first block carries the configure-time values into the install script.
install(CODE "
  set(_mybackup_unit_templates [[${PROJECT_SOURCE_DIR}/config/mybackup-schedule.service.in]]
                               [[${PROJECT_SOURCE_DIR}/config/mybackup-watch.service.in]])
  set(_mybackup_bindir [[${CMAKE_INSTALL_BINDIR}]])
  set(_mybackup_unitdir [[${MYBACKUP_INSTALL_SYSTEMD_USER_UNITDIR}]])
")
install(CODE [[
  # As GNUInstallDirs makes CMAKE_INSTALL_FULL_<dir>, from the prefix given to `cmake --install`.
  foreach(_dir IN ITEMS _mybackup_bindir _mybackup_unitdir)
    if(NOT IS_ABSOLUTE "${${_dir}}")
      set(${_dir} "${CMAKE_INSTALL_PREFIX}/${${_dir}}")
    endif()
  endforeach()
  set(CMAKE_INSTALL_FULL_BINDIR "${_mybackup_bindir}")
  foreach(_template IN LISTS _mybackup_unit_templates)
    get_filename_component(_unit "${_template}" NAME_WLE)
    set(_unit "${_mybackup_unitdir}/${_unit}")
    message(STATUS "Installing: $ENV{DESTDIR}${_unit}")
    configure_file("${_template}" "$ENV{DESTDIR}${_unit}" @ONLY)
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_unit}")  # as install(FILES): without DESTDIR
  endforeach()
]])

install(FILES README.md docs/format.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
