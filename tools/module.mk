# etlctl: the admin command-line tool (users, sistemas, queue, retention).
ETLCTL_OBJS := $(BUILD)/tools/etlctl.o
$(BUILD)/etlctl: $(ETLCTL_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(ETLCTL_OBJS) $(LIB) $(PKG_LIBS)
PROGS += $(BUILD)/etlctl
