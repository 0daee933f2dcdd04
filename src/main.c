/* SPDX-License-Identifier: MIT */
#include <keel/app.h>

/* All the work is in keel_app_run(); main only owns the app and maps failure to a status. */
int main(int argc, char **argv)
{
    keel_app *app = keel_app_new("keel");
    if (!app || keel_app_set_version(app, KEEL_VERSION) < 0)
        return keel_app_free(app), KEEL_EXIT_SOFTWARE;
    int r = keel_app_run(app, argc, argv);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
