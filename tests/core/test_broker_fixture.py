import pika


def test_the_broker_fixture_yields_a_url_where_rabbitmq_accepts_connections(amqp_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        assert connection.is_open
    finally:
        connection.close()
