# SPDX-License-Identifier: MIT
# The manual, written in scdoc (docs/man/*.scd) and built to roff in man/manN/ of the build tree:
# keel(1), keel.yaml(5), keel-plugin(7), and the library's section 3: keel(3), the overview, and
# one page per installed header, keel-app(3) for <keel/app.h> and so on. Installed under
# CMAKE_INSTALL_MANDIR.
find_program(SCDOC scdoc)
if(NOT SCDOC)
    message(FATAL_ERROR "scdoc is missing: it builds the man pages (make deps installs the Debian package scdoc)")
endif()
file(GLOB KEEL_MAN3_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.3.scd)
set(KEEL_MAN_PAGES keel.1 keel.yaml.5 keel-plugin.7)
foreach(src ${KEEL_MAN3_SOURCES})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})
    list(APPEND KEEL_MAN_PAGES ${page})
endforeach()
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

# `man keel_app_run` finds keel-app(3): every name a section-3 page lists in NAME but its own gets a
# one-line page that sources it (`.so man3/keel-app.3`), as libsystemd's pages do. Written when
# CMake runs, which a change of a page's source makes it do again.
set(KEEL_MAN3_LINKS)
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/man/man3)
foreach(src ${KEEL_MAN3_SOURCES})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})
    string(REGEX REPLACE "\\.3$" "" own ${page})
    file(READ ${src} text)
    if(NOT text MATCHES "\n# NAME\n\n([^\n]+) - ")
        message(FATAL_ERROR "${src}: no NAME line 'name, name, ... - summary'")
    endif()
    string(REPLACE "," ";" names "${CMAKE_MATCH_1}")
    foreach(name ${names})
        string(STRIP "${name}" name)
        if(name STREQUAL own)
            continue()
        endif()
        set(link ${PROJECT_BINARY_DIR}/man/man3/${name}.3)
        file(CONFIGURE OUTPUT ${link} CONTENT ".so man3/${page}\n") # rewritten only when it changes
        list(APPEND KEEL_MAN3_LINKS ${link})
    endforeach()
endforeach()
install(FILES ${KEEL_MAN3_LINKS} DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
add_custom_target(man ALL DEPENDS ${KEEL_MAN_OUTPUTS})
