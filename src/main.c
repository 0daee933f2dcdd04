/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keel/app.h>
#include <keel/log.h>

#define AGENT "keel-agent.so"

/* The directories the loader searches for keel's own libraries (LD_LIBRARY_PATH, keel's RUNPATH,
 * the system's), to free(); NULL once said why. */
static Dl_serinfo *library_dirs(void)
{
    void *self = dlopen(NULL, RTLD_LAZY);
    Dl_serinfo size;
    if (!self || dlinfo(self, RTLD_DI_SERINFOSIZE, &size) != 0) {
        keel_log_error("Failed to load the agent: %s", dlerror());
        return NULL;
    }
    Dl_serinfo *dirs = malloc(size.dls_size);
    if (!dirs) {
        keel_log_error("Failed to load the agent: out of memory");
        return NULL;
    }
    *dirs = size; /* what dlinfo() fills in, sized */
    if (dlinfo(self, RTLD_DI_SERINFO, dirs) != 0) {
        keel_log_error("Failed to load the agent: %s", dlerror());
        free(dirs);
        return NULL;
    }
    return dirs;
}

/* Names the directories looked in, for whoever mends the install. */
static void say_not_found(const Dl_serinfo *dirs)
{
    char list[1024] = "";
    size_t used = 0;
    for (unsigned i = 0; i < dirs->dls_cnt && used < sizeof list; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", dirs->dls_serpath[i].dls_name);
        used += n > 0 ? (size_t) n : 0;
    }
    keel_log_error("Failed to load the agent: no " AGENT " in %s (keel's RUNPATH names where it was installed)",
                   dirs->dls_cnt ? list : "any directory");
}

/* The module, by its absolute path in the first of those directories that holds it. A bare name
 * would be searched from the RUNPATH of whoever calls dlopen(): in a sanitized build, the
 * sanitizer's interceptor. NULL once said why. */
static void *open_agent(void)
{
    Dl_serinfo *dirs = library_dirs();
    if (!dirs)
        return NULL;
    void *dl = NULL;
    bool found = false;
    for (unsigned i = 0; !found && i < dirs->dls_cnt; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/" AGENT, dirs->dls_serpath[i].dls_name);
        found = n > 0 && (size_t) n < sizeof path && access(path, F_OK) == 0;
        if (found && !(dl = dlopen(path, RTLD_LAZY | RTLD_LOCAL))) /* there, and broken: not another one */
            keel_log_error("Failed to load the agent: %s", dlerror());
    }
    if (!found)
        say_not_found(dirs);
    free(dirs);
    return dl;
}

/* What the agent registers, from its module. It stays loaded: its services' threads and
 * registrations last as long as the process. */
static const keel_run_options *load_agent(void)
{
    void *dl = open_agent();
    void *entry = dl ? dlsym(dl, "keel_agent_run_options") : NULL;
    if (dl && !entry)
        keel_log_error("Failed to load the agent: %s", dlerror());
    if (!entry)
        return NULL;
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
