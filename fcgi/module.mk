# etl-api: the REST API as a FastCGI (and CGI) program.
API_SRCS := $(sort $(wildcard fcgi/*.c))
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/etl-api: $(API_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $(API_OBJS) $(LIB) $(PKG_LIBS) $(FCGI_LIBS) -lm

PROGS += $(BUILD)/etl-api

# The trivial responder of bench/api.sh (needs libfcgi, which the generic
# bench rule does not link): an explicit rule wins over bench's pattern.
$(BUILD)/bench/fcgi_echo: $(BUILD)/bench/fcgi_echo.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(FCGI_LIBS)
