/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A compiled-in plugin: registered by keel_app_run() before the `command` event. */
typedef struct keel_plugin {
    const char *name;               /* the name `plugins.disabled` refers to */
    int order;                      /* plugins register by ascending order, then name */
    int (*register_fn)(keel_app *); /* registers commands and observers; a negative errno fails the run */
} keel_plugin;

/** The order of Keel's standard observers (commands, config, pidfile, systemd): before any other. */
#define KEEL_PLUGIN_ORDER_CORE 100
/** The order of a plugin declared with KEEL_PLUGIN(). */
#define KEEL_PLUGIN_ORDER_DEFAULT 500

/**
 * Compiles in a plugin: places a pointer to its descriptor in the `keel_plugins` ELF section,
 * which keel_app_run() walks at start-up. Plugins register in ascending @order, then by name (never
 * in link order, which neither the compiler nor the linker promises). Observers a plugin
 * registers (directly, or from its own observers) belong to it: when configuration lists the
 * plugin in `plugins.disabled`, every one of them that has not run yet is removed once the
 * configuration is loaded (configure.before), so a disabled plugin runs at most its command and
 * init observers.
 */
#define KEEL_PLUGIN_ORDERED(id, ord, fn)                                                                                           \
    static const keel_plugin keel__plugin_desc_##id = { .name = #id, .order = (ord), .register_fn = (fn) };                        \
    static const keel_plugin *const keel__plugin_ptr_##id                                                                          \
        __attribute__((used, section("keel_plugins"), aligned(sizeof(void *)))) = &keel__plugin_desc_##id
#define KEEL_PLUGIN(id, fn) KEEL_PLUGIN_ORDERED(id, KEEL_PLUGIN_ORDER_DEFAULT, fn)

#ifdef __cplusplus
}
#endif
