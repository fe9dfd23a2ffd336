# SPDX-License-Identifier: MIT
# Installation of everything but the binaries (whose install() lines live in
# broker/, cli/ and ssh-front/): systemd units, the sysusers.d file, the default
# configuration in /etc/ttyhub, and the man pages, built here from scdoc.
#
# Included from the top CMakeLists.txt after the add_subdirectory() lines.
#
# Paths:
# - Binaries, man pages and (without pkg-config data) units and sysusers.d
#   use relative destinations, so `cmake --install build --prefix /usr`
#   decides where they go at install time.
# - The units' ExecStart= paths are rewritten at install time from
#   /usr/sbin to the real sbin directory of that prefix, so the units always
#   name the installed binaries (and ttyhub-webd's --static-dir the
#   installed page).
# - Unit and sysusers.d directories come from pkg-config's systemd.pc when
#   it is there (systemd reads only those places); override with
#   -DTTYHUB_SYSTEMD_UNITDIR=... / -DTTYHUB_SYSUSERSDIR=...
# - The configuration goes to /etc/ttyhub whatever the prefix: that is
#   where the daemons look by default and what ConfigurationDirectory=
#   means.  Override with -DTTYHUB_CONFDIR=...

include(GNUInstallDirs)

# Not CMAKE_INSTALL_LIBDIR, which may be lib64 or lib/x86_64-linux-gnu:
# systemd looks in lib.
set(_ttyhub_unitdir "lib/systemd/system")
set(_ttyhub_sysusersdir "lib/sysusers.d")
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_get_variable(_ttyhub_pc_unitdir systemd systemdsystemunitdir)
  pkg_get_variable(_ttyhub_pc_sysusersdir systemd sysusersdir)
  if(_ttyhub_pc_unitdir)
    set(_ttyhub_unitdir "${_ttyhub_pc_unitdir}")
  endif()
  if(_ttyhub_pc_sysusersdir)
    set(_ttyhub_sysusersdir "${_ttyhub_pc_sysusersdir}")
  endif()
endif()
set(TTYHUB_SYSTEMD_UNITDIR "${_ttyhub_unitdir}" CACHE STRING
    "Where the systemd units go (relative: under the install prefix)")
set(TTYHUB_SYSUSERSDIR "${_ttyhub_sysusersdir}" CACHE STRING
    "Where the sysusers.d file goes (relative: under the install prefix)")
set(TTYHUB_CONFDIR "/etc/ttyhub" CACHE STRING "Where the default configuration goes")

set(_ttyhub_units ttyhubd.service ttyhubd.socket ttyhub-sshd.service ttyhub-sshd.socket
                  ttyhub-webd.service ttyhub-webd.socket)
set(_ttyhub_units_src "${PROJECT_SOURCE_DIR}/units")
set(_ttyhub_units_stage "${PROJECT_BINARY_DIR}/units")

# Runs at install time: CMAKE_INSTALL_PREFIX there is the --prefix given to
# `cmake --install`, so the rewritten paths follow it.
set(_ttyhub_code [==[
set(_sbindir "@CMAKE_INSTALL_SBINDIR@")
if(NOT IS_ABSOLUTE "${_sbindir}")
  set(_sbindir "${CMAKE_INSTALL_PREFIX}/${_sbindir}")
endif()
set(_webdir "@TTYHUB_WEB_DIR@")
if(NOT IS_ABSOLUTE "${_webdir}")
  set(_webdir "${CMAKE_INSTALL_PREFIX}/${_webdir}")
endif()
file(MAKE_DIRECTORY "@_ttyhub_units_stage@")
foreach(_unit @_ttyhub_units@)
  file(READ "@_ttyhub_units_src@/${_unit}" _text)
  string(REPLACE "=/usr/sbin/" "=${_sbindir}/" _text "${_text}")
  string(REPLACE "--static-dir /usr/share/ttyhub/web" "--static-dir ${_webdir}" _text "${_text}")
  file(WRITE "@_ttyhub_units_stage@/${_unit}" "${_text}")
endforeach()
]==])
string(CONFIGURE "${_ttyhub_code}" _ttyhub_code @ONLY)
install(CODE "${_ttyhub_code}")
foreach(_unit ${_ttyhub_units})
  install(FILES "${_ttyhub_units_stage}/${_unit}" DESTINATION "${TTYHUB_SYSTEMD_UNITDIR}")
endforeach()

install(FILES "${_ttyhub_units_src}/ttyhub.sysusers" DESTINATION "${TTYHUB_SYSUSERSDIR}"
        RENAME ttyhub.conf)

# Configuration: commented defaults and an example access file.  An existing
# file is kept: reinstalling must not wipe an operator's keys or settings.
# Mode 0644: ttyhubd (user ttyhub) reads the access file; public keys are not
# secret (0640 with group ttyhub hides who may use which console).
set(_ttyhub_code [==[
set(_confdir "@TTYHUB_CONFDIR@")
if(NOT IS_ABSOLUTE "${_confdir}")
  set(_confdir "${CMAKE_INSTALL_PREFIX}/${_confdir}")
endif()
foreach(_conf ttyhubd.conf ttyhub-sshd.conf ttyhub-webd.conf access)
  if(EXISTS "$ENV{DESTDIR}${_confdir}/${_conf}")
    message(STATUS "Keeping: $ENV{DESTDIR}${_confdir}/${_conf}")
  else()
    # file(INSTALL) adds DESTDIR itself and records the file in the manifest.
    file(INSTALL "@PROJECT_SOURCE_DIR@/etc/${_conf}" DESTINATION "${_confdir}"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endforeach()
]==])
string(CONFIGURE "${_ttyhub_code}" _ttyhub_code @ONLY)
install(CODE "${_ttyhub_code}")

# The web page ttyhub-webd serves (--static-dir): the fixed list of files the
# page's build (web/) leaves in the build directory.  OPTIONAL: a build
# without the page (no npm) still installs the rest.
foreach(_web index.html app.js app.css xterm.js xterm.css addon-fit.js)
  install(FILES "${PROJECT_BINARY_DIR}/web/${_web}" DESTINATION "${TTYHUB_WEB_DIR}" OPTIONAL)
endforeach()

# Man pages: docs/man/NAME.N.scd -> build/man/NAME.N -> share/man/manN/NAME.N
# (TTYHUB_MAN=OFF builds without them, e.g. where scdoc is missing.)
if(TTYHUB_MAN)
find_program(SCDOC scdoc)
if(NOT SCDOC)
  message(FATAL_ERROR "scdoc not found: it builds the man pages (apt-get install scdoc, "
                      "or configure with -DTTYHUB_MAN=OFF)")
endif()
file(GLOB _ttyhub_man_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/man/*.scd")
set(_ttyhub_man_pages)
foreach(_scd ${_ttyhub_man_sources})
  get_filename_component(_page "${_scd}" NAME_WLE)        # ttyhubd.8
  string(REGEX MATCH "[0-9]$" _section "${_page}")
  set(_out "${PROJECT_BINARY_DIR}/man/${_page}")
  add_custom_command(
    OUTPUT "${_out}"
    COMMAND sh -c "\"$1\" < \"$2\" > \"$3.tmp\" && mv \"$3.tmp\" \"$3\"" sh
            "${SCDOC}" "${_scd}" "${_out}"
    DEPENDS "${_scd}"
    COMMENT "scdoc ${_page}"
    VERBATIM)
  list(APPEND _ttyhub_man_pages "${_out}")
  install(FILES "${_out}" DESTINATION "${CMAKE_INSTALL_MANDIR}/man${_section}")
endforeach()
file(MAKE_DIRECTORY "${PROJECT_BINARY_DIR}/man")
add_custom_target(man ALL DEPENDS ${_ttyhub_man_pages})
endif()
