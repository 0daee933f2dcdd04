/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <string.h>

#include <keel/app.h>
#include <keel/log.h>

#define AGENT "keel-agent.so"

/* What the agent registers, from its module (through keel's RUNPATH), or NULL once said why. The
 * module stays loaded: its services' threads and registrations last as long as the process. */
static const keel_run_options *load_agent(void)
{
    void *dl = dlopen(AGENT, RTLD_LAZY | RTLD_LOCAL);
    void *entry = dl ? dlsym(dl, "keel_agent_run_options") : NULL;
    if (!entry) {
        keel_log_error("Failed to load the agent " AGENT ": %s", dlerror());
        return NULL;
    }
    const keel_run_options *(*run_options)(void);
    memcpy(&run_options, &entry, sizeof entry); /* object to function pointer, as POSIX's dlsym() allows */
    return run_options();
}

/* All the work is in keel_app_run_with(); main only loads the agent, owns the app and maps failure
 * to a status. `keel --version`, which keel_app_run_with() answers first, loads no agent: mapping
 * the module and libcrypto is half of its time (docs/decisions/0036). */
int main(int argc, char **argv)
{
    bool version = argc > 1 && strcmp(argv[1], "--version") == 0;
    const keel_run_options *agent = version ? NULL : load_agent();
    if (!version && !agent)
        return KEEL_EXIT_SOFTWARE;
    keel_app *app = keel_app_new("keel");
    if (!app || keel_app_set_version(app, KEEL_VERSION) < 0)
        return keel_app_free(app), KEEL_EXIT_SOFTWARE;
    int r = keel_app_run_with(app, argc, argv, agent);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
