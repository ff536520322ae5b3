# Stand-in for the public postgres:15 image (no registry here): Debian's
# PostgreSQL 15 from the debootstrap root filesystem, with an entrypoint
# honouring the part of the public image's interface docs/compose.yaml uses.
ARG BASE
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY postgres-entrypoint /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
