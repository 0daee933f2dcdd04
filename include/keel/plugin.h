/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

/** A compiled-in plugin: registered by keel_app_run() before the `command` event. */
typedef struct keel_plugin {
    const char *name;              /* the name `plugins.disabled` refers to */
    int (*register_fn)(keel_app *); /* registers commands and observers; a negative errno fails the run */
} keel_plugin;

/**
 * Compiles in a plugin: places a pointer to its descriptor in the `keel_plugins` ELF section,
 * which keel_app_run() walks at start-up. Plugins register in link order. Observers a plugin
 * registers (directly, or from its own observers) belong to it: when configuration lists the
 * plugin in `plugins.disabled`, every one of them that has not run yet is removed once the
 * configuration is loaded (configure.before), so a disabled plugin runs at most its command and
 * init observers.
 */
#define KEEL_PLUGIN(id, fn)                                                                                                       \
    static const keel_plugin keel__plugin_desc_##id = { .name = #id, .register_fn = (fn) };                                       \
    static const keel_plugin *const keel__plugin_ptr_##id __attribute__((used, section("keel_plugins"), aligned(sizeof(void *)))) = \
        &keel__plugin_desc_##id
