# SPDX-License-Identifier: MIT
# What `cmake --install` (and `make install DESTDIR=… PREFIX=…`) puts where, every file under the
# prefix of the install: the framework for programs built on it (libkeel.so and libkeel.a, the
# headers, keel.pc and keel-static.pc, the CMake package Keel::keel and Keel::keel-static, the
# examples), and the agent (the keel binary, its units, the example configuration). Man pages are
# installed where they are built (cmake/man.cmake).
include(CMakePackageConfigHelpers)

install(TARGETS libkeel-shared libkeel-static EXPORT KeelTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS keel RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The agent's module: private to keel, which finds it through its RUNPATH (below).
install(TARGETS keel-agent LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/keel)
install(DIRECTORY include/keel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

set(KEEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Keel)
install(EXPORT KeelTargets NAMESPACE Keel:: DESTINATION ${KEEL_CMAKE_DIR})
configure_package_config_file(cmake/KeelConfig.cmake.in ${PROJECT_BINARY_DIR}/KeelConfig.cmake INSTALL_DESTINATION ${KEEL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/KeelConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/KeelConfig.cmake ${PROJECT_BINARY_DIR}/KeelConfigVersion.cmake DESTINATION ${KEEL_CMAKE_DIR})

# systemd's unit directory (relative: under the prefix; /usr/lib/systemd/system for a packager's /usr).
if(KEEL_UNIT_DIR STREQUAL "${CMAKE_INSTALL_PREFIX}/lib/systemd/system") # a build tree configured before it was relative
    unset(KEEL_UNIT_DIR CACHE)
endif()
set(KEEL_UNIT_DIR lib/systemd/system CACHE PATH "Where the systemd units go (relative: under the prefix)")
install(FILES conf/keel-token.socket conf/keel-metrics.socket conf/keel-healthcheck.socket conf/keel-acme-tls-alpn.socket DESTINATION ${KEEL_UNIT_DIR})

# keel finds libkeel.so.0 and its module keel-agent.so in the build directory, and once installed
# through a RUNPATH the install writes (cmake/install-time.cmake.in). CMake's own rewriting would pad the build RUNPATH with an
# empty entry, which the loader reads as the current directory: a failed openat() for every library
# at every exec, and a library of that name planted there would be loaded. So keel is linked with
# the build RUNPATH as its final one, and the install edits it in place; so the build RUNPATH is
# made at least as long as what it becomes (with trailing slashes, which the loader drops).
file(RELATIVE_PATH keel_bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
set(KEEL_SYSTEM_LIBDIRS ${CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES} ${CMAKE_C_IMPLICIT_LINK_DIRECTORIES})
list(REMOVE_DUPLICATES KEEL_SYSTEM_LIBDIRS)
string(LENGTH "$ORIGIN/${keel_bin_to_lib}:$ORIGIN/${keel_bin_to_lib}/keel" keel_rpath_length)
foreach(dir ${KEEL_SYSTEM_LIBDIRS}) # what a system library directory's RUNPATH becomes: DIR/keel
    string(LENGTH "${dir}/keel" length)
    if(length GREATER keel_rpath_length)
        set(keel_rpath_length ${length})
    endif()
endforeach()
set(KEEL_BUILD_RPATH ${PROJECT_BINARY_DIR})
string(LENGTH "${KEEL_BUILD_RPATH}" length)
while(length LESS keel_rpath_length)
    string(APPEND KEEL_BUILD_RPATH "/")
    math(EXPR length "${length} + 1")
endwhile()
set_target_properties(keel PROPERTIES BUILD_WITH_INSTALL_RPATH ON INSTALL_RPATH "${KEEL_BUILD_RPATH}")
# What names the prefix (keel.pc, keel-static.pc, keel.service's Exec*= lines, keel's RUNPATH) is
# written by the install itself, for the prefix it installs to.
configure_file(cmake/install-time.cmake.in ${PROJECT_BINARY_DIR}/install-time.cmake @ONLY)
install(SCRIPT ${PROJECT_BINARY_DIR}/install-time.cmake)

install(FILES conf/keel.yaml conf/keel.dev.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# The programs keel-plugin(7) points to, with their CMakeLists.txt and Makefile: they build from here.
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# The lifecycle's journal messages, for journalctl -x.
install(FILES conf/keel.catalog DESTINATION lib/systemd/catalog)
# Shell completion: bash-completion's and Debian's zsh vendor directories.
install(FILES conf/completion/keel.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME keel)
install(FILES conf/completion/_keel DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)

# What `make install` builds: the installed targets, not the tests.
add_custom_target(installed)
add_dependencies(installed libkeel-shared libkeel-static keel keel-agent man)
