"""Game events on an MQTT broker: the connection (:mod:`server.events.mqtt`), the events a
server publishes and the cluster of servers sharing one broker (:mod:`server.events.cluster`),
and the live feed ``autosteer-server watch`` prints (:mod:`server.events.watch`)."""
