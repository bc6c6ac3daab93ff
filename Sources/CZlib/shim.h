/*
 * zlib for Swift (already linked through libbpf): its CRC-32 checks the state files' records, and the embedded BPF
 * objects are deflated at build time and inflated when loaded.
 */
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>
#endif
