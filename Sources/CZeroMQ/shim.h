#ifndef RUJUK_CZEROMQ_SHIM_H
#define RUJUK_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
