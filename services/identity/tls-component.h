/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The agent's TLS for one of libkeel's standard components (keel_component_options.tls): its
 * SERVICE.tls keys (off, self, files) run through tls_server, as the token service's server does.
 */

#include <keel/components.h>

#include "identity.h"
#include "tls-server.h"

typedef struct tls_component {
    tls_server_config config;    /* the storage of the component's SERVICE.tls* keys */
    identity *identity;          /* borrowed from the app: the credential of SERVICE.tls self */
    const char *client_required; /* the 401 body when a client CA is set: names SERVICE.tls_client_ca_file */
} tls_component;

/** The hooks that run @t (borrowed until the app is freed) for a component. */
keel_component_tls tls_component_hooks(tls_component *t);
