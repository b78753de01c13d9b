/*
 * fcgi_echo: the trivial FastCGI responder bench/api.sh measures etl-api
 * against. It reads the request body and answers a fixed small JSON body,
 * so the difference to etl-api is the cost of our own work (routing,
 * token, SQLite, JSON), not of the web server or libfcgi. Run by the web
 * server with the listening socket on fd 0, like etl-api.
 */
#include <stdio.h>
#include <string.h>

#include <fcgiapp.h>

int
main(void)
{
	static const char resp[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
	                           "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}";
	FCGX_Request r;
	char buf[4096];

	if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0) {
		fprintf(stderr, "fcgi_echo: libfcgi init failed\n");
		return 1;
	}
	while (FCGX_Accept_r(&r) >= 0) {
		while (FCGX_GetStr(buf, (int)sizeof(buf), r.in) > 0)
			;
		if (FCGX_PutStr(resp, (int)strlen(resp), r.out) < 0)
			fprintf(stderr, "fcgi_echo: write failed\n");
		FCGX_Finish_r(&r);
	}
	return 0;
}
