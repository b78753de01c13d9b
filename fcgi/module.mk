# etl-api: the REST API as a FastCGI (and CGI) program.
API_SRCS := $(sort $(wildcard fcgi/*.c))
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/etl-api: $(API_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(API_OBJS) $(LIB) $(PKG_LIBS) $(FCGI_LIBS) -lm

PROGS += $(BUILD)/etl-api
