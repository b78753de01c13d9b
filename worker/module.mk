# etl-worker: the job daemon (worker/*.c), linked with the shared library.
# --as-needed keeps libraries the worker does not use (libwebsockets, and
# the OpenSSL it brings) out of its address space: a smaller idle RSS.
WORKER_SRCS := $(sort $(wildcard worker/*.c))
WORKER_OBJS := $(WORKER_SRCS:%.c=$(BUILD)/%.o)
PROGS += $(BUILD)/etl-worker

$(BUILD)/etl-worker: $(WORKER_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $(WORKER_OBJS) $(LIB) $(PKG_LIBS) -lm
