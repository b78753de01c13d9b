# etlctl: the admin command-line tool (users, sistemas, queue, retention).
# --as-needed, as for the daemons: libwebsockets (and the OpenSSL it brings)
# stays out of a tool that never opens a websocket.
ETLCTL_OBJS := $(BUILD)/tools/etlctl.o
$(BUILD)/etlctl: $(ETLCTL_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $(ETLCTL_OBJS) $(LIB) $(PKG_LIBS)
PROGS += $(BUILD)/etlctl
