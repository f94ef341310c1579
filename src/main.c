/* main.c: command line of lakebase-proxy. */
#include <stdio.h>

int main(void)
{
	puts("lakebase-proxy " LBP_VERSION);
	return 0;
}
