# SPDX-License-Identifier: MIT
# What `cmake --install` (and `make install DESTDIR=…`) puts where: the framework for programs built
# on it (libkeel.so and libkeel.a, the headers, keel.pc, the CMake package Keel::keel), and the agent
# (the keel binary, its units, the example configuration). Man pages, the journal catalog and shell
# completions are installed where they are built (docs/, conf/).
include(CMakePackageConfigHelpers)

install(TARGETS libkeel-shared libkeel-static EXPORT KeelTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS keel RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/keel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

set(KEEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Keel)
install(EXPORT KeelTargets NAMESPACE Keel:: DESTINATION ${KEEL_CMAKE_DIR})
configure_package_config_file(cmake/KeelConfig.cmake.in ${PROJECT_BINARY_DIR}/KeelConfig.cmake INSTALL_DESTINATION ${KEEL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/KeelConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/KeelConfig.cmake ${PROJECT_BINARY_DIR}/KeelConfigVersion.cmake DESTINATION ${KEEL_CMAKE_DIR})

# keel.pc: absolute paths from the prefix, as Debian's own .pc files have them.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(KEEL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
    set(KEEL_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(KEEL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
    set(KEEL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/keel.pc.in ${PROJECT_BINARY_DIR}/keel.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/keel.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# systemd's unit directory under the prefix (/usr/lib/systemd/system for a packager's /usr),
# resolved when installing, so that `cmake --install --prefix /usr` puts the units there too.
if(KEEL_UNIT_DIR STREQUAL "${CMAKE_INSTALL_PREFIX}/lib/systemd/system") # a build tree configured before it was relative
    unset(KEEL_UNIT_DIR CACHE)
endif()
set(KEEL_UNIT_DIR lib/systemd/system CACHE PATH "Where the systemd units go (relative: under the prefix)")
# The unit runs the binary installed beside it: ExecStart= and ExecReload= name it under the
# prefix the install is made for, which only the install itself knows.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS conf/keel.service)
install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/conf/keel.service\" unit)
    set(bindir \"${CMAKE_INSTALL_BINDIR}\")
    if(NOT IS_ABSOLUTE \"\${bindir}\")
        set(bindir \"\${CMAKE_INSTALL_PREFIX}/\${bindir}\")
    endif()
    string(REPLACE \"=/usr/bin/keel \" \"=\${bindir}/keel \" unit \"\${unit}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/keel.service\" \"\${unit}\")
")
install(FILES ${PROJECT_BINARY_DIR}/keel.service conf/keel-token.socket conf/keel-metrics.socket conf/keel-healthcheck.socket
        DESTINATION ${KEEL_UNIT_DIR})
install(FILES conf/keel.yaml conf/keel.dev.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# The lifecycle's journal messages, for journalctl -x.
install(FILES conf/keel.catalog DESTINATION lib/systemd/catalog)
# Shell completion: bash-completion's and Debian's zsh vendor directories.
install(FILES conf/completion/keel.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME keel)
install(FILES conf/completion/_keel DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
