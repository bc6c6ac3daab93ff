/* zlib for Swift (already linked through libbpf): its CRC-32 checks the state files' records. */
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>
#endif
