/* SPDX-License-Identifier: MIT */
/*
 * Once the app is first ready and its loop idle, the process gives back memory only its start
 * needed (docs/decisions/0023): the dynamic loader's relocation tables, which it read once before
 * main() and which stay mapped because nothing unmaps them (half a megabyte for libcrypto alone),
 * and the heap pages that start-up freed.
 */
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "machine-internal.h"
#include "macro-internal.h"

/* Where glibc relocated the dynamic section in place, d_ptr is already an address; where it did
 * not (a read-only dynamic section), an offset from the load address. */
static uintptr_t dyn_address(const struct dl_phdr_info *info, ElfW(Addr) ptr)
{
    return ptr < info->dlpi_addr ? info->dlpi_addr + ptr : ptr;
}

/* Drops the whole pages of [@addr, @addr + @size) when they lie in a segment loaded read-only:
 * never written (text relocations aside, which relocation tables never are), so a private file
 * mapping's pages, which any later read faults in again from the file unchanged. */
static void drop_pages(const struct dl_phdr_info *info, uintptr_t addr, size_t size)
{
    uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    uintptr_t from = (addr + page - 1) & ~(page - 1), to = (addr + size) & ~(page - 1);
    if (size == 0 || to <= from)
        return;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && ph->p_flags == PF_R && from >= start && to <= start + ph->p_memsz) {
            (void) madvise((void *) from, to - from, MADV_DONTNEED); /* best effort: only memory */
            return;
        }
    }
}

static int drop_relocations(struct dl_phdr_info *info, size_t size, void *userdata)
{
    const ElfW(Dyn) *dyn = NULL;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum && !dyn; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *) (info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    ElfW(Addr) rela = 0, jmprel = 0;
    size_t rela_size = 0, jmprel_size = 0;
    for (; dyn && dyn->d_tag != DT_NULL; dyn++)
        switch (dyn->d_tag) {
        case DT_TEXTREL:
            return 0; /* writes into loaded segments: none of its pages is left alone */
        case DT_FLAGS:
            if (dyn->d_un.d_val & DF_TEXTREL)
                return 0;
            break;
        case DT_RELA:
            rela = dyn->d_un.d_ptr;
            break;
        case DT_RELASZ:
            rela_size = dyn->d_un.d_val;
            break;
        case DT_JMPREL:
            jmprel = dyn->d_un.d_ptr;
            break;
        case DT_PLTRELSZ:
            jmprel_size = dyn->d_un.d_val;
            break;
        }
    if (rela)
        drop_pages(info, dyn_address(info, rela), rela_size);
    if (jmprel)
        drop_pages(info, dyn_address(info, jmprel), jmprel_size);
    return 0;
}

void keel__trim_memory(void)
{
    (void) dl_iterate_phdr(drop_relocations, NULL);
    (void) malloc_trim(0);
}

static int on_idle(sd_event_source *s, void *userdata)
{
    keel__trim_memory();
    return 0;
}

void keel__trim_when_idle(keel_app *app)
{
    sd_event_source *s = NULL;
    if (sd_event_add_defer(keel_app_get_event_loop(app), &s, on_idle, NULL) < 0)
        return; /* the memory stays: nothing depends on giving it back */
    (void) sd_event_source_set_description(s, "trim-memory");
    /* After the idle-priority work that frees start-up's memory (libcurl's unload). */
    (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IDLE + 1);
    (void) sd_event_source_set_floating(s, true); /* one-shot; the loop frees it */
    sd_event_source_unref(s);
}
