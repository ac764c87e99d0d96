"""Canary deliveries are unique per run, token and message (a sender's retry adds no row)."""

from django.db import migrations, models


def key_earlier_rows(apps, schema_editor):
    """Rows from before had no message key: each gets its own, so none of them collides."""
    CanaryDelivery = apps.get_model("relaytests", "CanaryDelivery")
    for pk in CanaryDelivery.objects.values_list("pk", flat=True):
        CanaryDelivery.objects.filter(pk=pk).update(message_key=f"recorded-before-keys:{pk}")


class Migration(migrations.Migration):
    dependencies = [("relaytests", "0003_record")]

    operations = [
        migrations.AddField(
            model_name="canarydelivery",
            name="message_key",
            field=models.CharField(default="", max_length=255),
            preserve_default=False,
        ),
        migrations.RunPython(key_earlier_rows, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="canarydelivery",
            constraint=models.UniqueConstraint(
                fields=("run", "token", "message_key"), name="one_delivery_per_token_and_message"
            ),
        ),
    ]
