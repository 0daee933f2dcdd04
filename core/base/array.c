/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "macro-internal.h"

int keel__grow(void *array, size_t *allocated, size_t need, size_t size)
{
    void **p = array;
    if (need <= *allocated)
        return 0;
    size_t n = MAX(need, MAX(*allocated * 2, (size_t) 8));
    void *q = reallocarray(*p, n, size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *allocated = n;
    return 0;
}
