# SPDX-License-Identifier: MIT
# The manual, written in scdoc (docs/man/*.scd) and built to roff in man/manN/ of the build tree:
# keel(1), keel.yaml(5), keel-plugin(7). Installed under CMAKE_INSTALL_MANDIR.
find_program(SCDOC scdoc)
if(NOT SCDOC)
    message(FATAL_ERROR "scdoc is missing: it builds the man pages (make deps installs the Debian package scdoc)")
endif()
set(KEEL_MAN_PAGES keel.1 keel.yaml.5 keel-plugin.7)
set(KEEL_MAN_OUTPUTS)
foreach(page ${KEEL_MAN_PAGES})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    set(out ${PROJECT_BINARY_DIR}/man/man${section}/${page})
    add_custom_command(OUTPUT ${out} COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man/man${section}
                       COMMAND sh -c "${SCDOC} < ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd > ${out}"
                       DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd VERBATIM)
    list(APPEND KEEL_MAN_OUTPUTS ${out})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${KEEL_MAN_OUTPUTS})
