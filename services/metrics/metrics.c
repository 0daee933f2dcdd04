/* SPDX-License-Identifier: MIT */
/* The agent's metrics exporter: libkeel's component, after the services whose metrics it exports
 * (so that its first scrape sees all of them), with the agent's TLS (metrics.tls: off, self, files). */
#include <stdlib.h>

#include <keel/keel.h>

#include "tls-component.h"

#define C(field) offsetof(tls_component, config.field)
static const keel_config_key config_keys[] = {
    { .key = "metrics.tls",
      .type = KEEL_CONFIG_ENUM,
      .offset = C(mode),
      .def = "off",
      .choices = tls_server_mode_choices,
      .help = "off, self (the certificate service's pair, rotating with it) or files (tls_cert_file, tls_key_file)" },
    { .key = "metrics.tls_cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(cert_file),
      .def = "''",
      .help = "metrics.tls files: the server certificate, then its chain (PEM); read again on SIGHUP" },
    { .key = "metrics.tls_key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(key_file),
      .def = "''",
      .help = "metrics.tls files: its private key (PEM, mode 0600 or stricter)" },
    { .key = "metrics.tls_client_ca_file",
      .type = KEEL_CONFIG_PATH,
      .offset = C(client_ca_file),
      .def = "''",
      .help = "with TLS: the CAs scrapers' certificates are verified against; set, /metrics requires one" },
};
#undef C

static int metrics_register(keel_app *app)
{
    tls_component *tls = calloc(1, sizeof *tls);
    if (!tls)
        return -ENOMEM;
    tls->client_required = "a client certificate verified by metrics.tls_client_ca_file is required\n";
    /* Attached first: the app frees it after the configuration, which keeps its strings there. */
    int r = keel_app_attach(app, "metrics.tls", tls, free);
    if (r < 0) {
        free(tls);
        return r;
    }
    if ((r = keel_app_add_config(app, config_keys, ELEMENTSOF(config_keys), tls)) < 0)
        return r;
    keel_component_tls hooks = tls_component_hooks(tls);
    keel_component_options o = { .after = (const char *const[]){ "certificate", "token", NULL }, .tls = &hooks };
    return keel_app_add_metrics_exporter(app, &o);
}

KEEL_PLUGIN(metrics, metrics_register);
