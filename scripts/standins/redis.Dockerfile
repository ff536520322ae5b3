# Stand-in for the public redis:7 image (no registry here): Debian's Redis 7
# from the debootstrap root filesystem, with an entrypoint honouring the part
# of the public image's interface docs/compose.yaml uses.
ARG BASE
FROM ${BASE}
COPY redis-entrypoint /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
