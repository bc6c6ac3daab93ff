/* Typed entry points into libbpf for Swift: the LIBBPF_OPTS-based calls are macros and do not import. */
#ifndef CLIBBPF_SHIM_H
#define CLIBBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <errno.h>
#endif
