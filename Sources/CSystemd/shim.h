/* libsystemd's readiness protocol for Swift: sd_notify (sd_notifyf is variadic and does not import; Swift formats). */
#ifndef CSYSTEMD_SHIM_H
#define CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#endif
