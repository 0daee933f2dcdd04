/* SPDX-License-Identifier: MIT */
#pragma once

/* Everything a plugin author uses. */
#include <keel/app.h>
#include <keel/common.h>
#include <keel/components.h>
#include <keel/config.h>
#include <keel/event.h>
#include <keel/fdstore.h>
#include <keel/fetch.h>
#include <keel/fileio.h>
#include <keel/health.h>
#include <keel/http.h>
#include <keel/log.h>
#include <keel/metrics.h>
#include <keel/plugin.h>
#include <keel/point.h>
#include <keel/service.h>
#include <keel/strbuf.h>
#include <keel/task.h>
#include <keel/util.h>
#include <keel/work.h>
