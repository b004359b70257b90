#!/usr/bin/env python3
"""Writes experiments/data/specs/: small OpenAPI specs of APIs invented for apitune's bundled
corpus (a bookshop, weather, a payments sandbox, a task tracker, a genomics lab, transit,
greenhouse sensors, museum tickets). None of them exists; hosts use the reserved `.test` TLD.

They cover what the OpenAPI ingest has to handle: JSON and YAML, OpenAPI 3.0 and 3.1 (type lists,
schema `examples`), `$ref`s to schemas, parameters, request bodies and responses (one recursive
schema), server variables, api-key (header, query, cookie), basic, bearer and OAuth2 security,
form-urlencoded bodies, per-operation `security: []`, and `x-code-samples` / `x-codeSamples`.

Deterministic: rerunning rewrites the same bytes.
Run: python3 scripts/make_bundled_specs.py   (needs PyYAML 6.0.3: pip install pyyaml==6.0.3)
"""

import json
import os

import yaml

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "data", "specs")


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def field(kind, example=None, fmt=None, enum=None, description=None, nullable=False, v31=False):
    schema = {"type": kind}
    if nullable:
        if v31:
            schema["type"] = [kind, "null"]
        else:
            schema["nullable"] = True
    if fmt:
        schema["format"] = fmt
    if enum:
        schema["enum"] = enum
    if description:
        schema["description"] = description
    if example is not None:
        if v31:
            schema["examples"] = [example]
        else:
            schema["example"] = example
    return schema


def obj(properties, required=(), description=None):
    schema = {"type": "object"}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return schema


def param(name, where, kind="string", required=False, example=None, description=None, enum=None):
    p = {"name": name, "in": where}
    if description:
        p["description"] = description
    if required or where == "path":
        p["required"] = True
    schema = {"type": kind}
    if enum:
        schema["enum"] = enum
    p["schema"] = schema
    if example is not None:
        p["example"] = example
    return p


def pref(name):
    return {"$ref": f"#/components/parameters/{name}"}


def op(op_id, summary, description, tag, params=(), body=None, response=None, status="200",
       media="application/json", security=None, samples=None, samples_key="x-code-samples"):
    o = {"operationId": op_id, "summary": summary, "description": description, "tags": [tag]}
    if params:
        o["parameters"] = list(params)
    if body is not None:
        o["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    resp = {"description": "Success"}
    if response is not None:
        resp["content"] = {"application/json": {"schema": response}}
    o["responses"] = {status: resp}
    if security is not None:
        o["security"] = security
    if samples:
        o[samples_key] = [{"lang": lang, "label": lang, "source": source} for lang, source in samples]
    return o


def crud(noun, plural, schema, tag, base, id_name, detail, list_params=(), input_schema=None,
         skip=()):
    """List/create/get/update/delete operations for one resource, as (path, method, op)."""
    title = noun[0].upper() + noun[1:]
    plural_title = plural[0].upper() + plural[1:]
    item_path = f"{base}/{{{id_name}}}"
    id_param = param(id_name, "path", description=f"Identifier of the {noun}.")
    body = input_schema or ref(schema)
    ops = [
        (base, "get", op(f"list{plural_title.replace(' ', '')}", f"List {plural}",
                         f"Returns a page of {plural}. {detail}", tag, params=list_params,
                         response={"type": "array", "items": ref(schema)})),
        (base, "post", op(f"create{title.replace(' ', '')}", f"Create a {noun}",
                          f"Creates a new {noun} and returns it with its assigned identifier.", tag,
                          body=body, response=ref(schema), status="201")),
        (item_path, "get", op(f"get{title.replace(' ', '')}", f"Get a {noun}",
                              f"Fetches one {noun} by its identifier.", tag, params=[id_param],
                              response=ref(schema))),
        (item_path, "patch", op(f"update{title.replace(' ', '')}", f"Update a {noun}",
                                f"Changes the given fields of a {noun}; fields left out keep their value.",
                                tag, params=[id_param], body=body, response=ref(schema))),
        (item_path, "delete", op(f"delete{title.replace(' ', '')}", f"Delete a {noun}",
                                 f"Removes a {noun} permanently.", tag, params=[id_param], status="204")),
    ]
    return [o for o in ops if o[1] not in skip]


def document(version, title, description, servers, schemas, operations, security_schemes=None,
             security=None, parameters=None):
    doc = {
        "openapi": version,
        "info": {"title": title, "version": "1.0.0", "description": description},
        "servers": servers,
    }
    if security is not None:
        doc["security"] = security
    paths = {}
    for path, method, operation in operations:
        paths.setdefault(path, {})[method] = operation
    doc["paths"] = paths
    components = {"schemas": schemas}
    if parameters:
        components["parameters"] = parameters
    if security_schemes:
        components["securitySchemes"] = security_schemes
    doc["components"] = components
    return doc


def bookshop():
    v31 = False
    schemas = {
        "Book": obj({
            "id": field("string", "bk_1029", description="Book identifier."),
            "title": field("string", "The Salt Road Atlas"),
            "isbn": field("string", "978-0-00-000000-2"),
            "authorId": field("string", "au_77"),
            "price": field("number", 18.5, fmt="double"),
            "stock": field("integer", 12),
            "genre": field("string", "travel", enum=["fiction", "travel", "science", "poetry"]),
        }, required=["title", "authorId"]),
        "Author": obj({
            "id": field("string", "au_77"),
            "name": field("string", "Mira Okonkwo"),
            "born": field("integer", 1971, nullable=True),
        }, required=["name"]),
        "OrderLine": obj({"bookId": field("string", "bk_1029"), "quantity": field("integer", 2)}),
        "Order": obj({
            "id": field("string", "or_5521"),
            "lines": {"type": "array", "items": ref("OrderLine")},
            "shippingAddress": ref("Address"),
            "status": field("string", "pending", enum=["pending", "paid", "shipped", "cancelled"]),
        }, required=["lines"]),
        "Address": obj({
            "street": field("string", "12 Quay Lane"),
            "city": field("string", "Port Ellery"),
            "postcode": field("string", "PE1 4QX"),
        }),
        "Review": obj({
            "id": field("string", "rv_88"),
            "stars": field("integer", 4),
            "text": field("string", "Vivid and well researched."),
        }, required=["stars"]),
    }
    page = [pref("Limit"), pref("Cursor")]
    ops = []
    ops += crud("book", "books", "Book", "Books", "/books", "bookId",
                "Books can be filtered by genre and sorted by title or price.",
                list_params=page + [param("genre", "query", description="Only books of this genre.")])
    ops += crud("author", "authors", "Author", "Authors", "/authors", "authorId",
                "Authors are sorted by name.", list_params=page)
    ops += crud("order", "orders", "Order", "Orders", "/orders", "orderId",
                "Only orders of the calling account are returned.", list_params=page, skip=("patch",))
    ops += [
        ("/books/search", "get", op("searchBooks", "Search the catalogue",
                                    "Full-text search over titles, authors and blurbs.", "Books",
                                    params=[param("q", "query", required=True, example="lighthouse keepers"), pref("Limit")],
                                    response={"type": "array", "items": ref("Book")})),
        ("/books/{bookId}/reviews", "get", op("listBookReviews", "List reviews of a book",
                                               "Returns reader reviews of one book, newest first.", "Reviews",
                                               params=[param("bookId", "path")],
                                               response={"type": "array", "items": ref("Review")})),
        ("/books/{bookId}/reviews", "post", op("createBookReview", "Review a book",
                                                "Adds a star rating and an optional text review to a book.", "Reviews",
                                                params=[param("bookId", "path")], body=ref("Review"),
                                                response=ref("Review"), status="201")),
        ("/authors/{authorId}/books", "get", op("listAuthorBooks", "List books by an author",
                                                 "Returns every book in the catalogue written by the author.", "Authors",
                                                 params=[param("authorId", "path")],
                                                 response={"type": "array", "items": ref("Book")})),
        ("/orders/{orderId}/cancel", "post", op("cancelOrder", "Cancel an order",
                                                 "Cancels an order that has not shipped yet and refunds the payment.", "Orders",
                                                 params=[param("orderId", "path")], response=ref("Order"))),
        ("/orders/{orderId}/shipment", "get", op("getOrderShipment", "Track an order's shipment",
                                                  "Returns the carrier and tracking number of a shipped order.", "Orders",
                                                  params=[param("orderId", "path")],
                                                  response=obj({"carrier": field("string", "Gullwing Post"),
                                                                "trackingNumber": field("string", "GW123456789")}))),
    ]
    # The spec's own samples replace generated curl and python code for two operations.
    for path, method, operation in ops:
        if operation["operationId"] == "listBooks":
            operation["x-code-samples"] = [
                {"lang": "Shell", "source": "curl --request GET \\\n  --url 'https://api.bookshop.test/v1/books?limit=20' \\\n  --header 'X-Bookshop-Key: REPLACE_KEY_VALUE'"},
                {"lang": "Python", "source": "import http.client\n\nconn = http.client.HTTPSConnection(\"api.bookshop.test\")\nheaders = {'X-Bookshop-Key': \"REPLACE_KEY_VALUE\"}\nconn.request(\"GET\", \"/v1/books?limit=20\", headers=headers)\nprint(conn.getresponse().read().decode(\"utf-8\"))"},
            ]
        if operation["operationId"] == "searchBooks":
            operation["x-code-samples"] = [
                {"lang": "cURL", "source": "curl --request GET \\\n  --url 'https://api.bookshop.test/v1/books/search?q=lighthouse%20keepers' \\\n  --header 'X-Bookshop-Key: REPLACE_KEY_VALUE'"},
            ]
    return "bookshop.yaml", document(
        "3.0.3", "Quayside Bookshop API",
        "Catalogue, orders and reviews of an independent bookshop.",
        [{"url": "https://api.bookshop.test/v1"}], schemas, ops,
        security_schemes={"ShopKey": {"type": "apiKey", "in": "header", "name": "X-Bookshop-Key"}},
        security=[{"ShopKey": []}],
        parameters={
            "Limit": param("limit", "query", "integer", description="Page size (1-100).", example=20),
            "Cursor": param("cursor", "query", description="Opaque cursor from the previous page."),
        })


def weather():
    v31 = True
    schemas = {
        "Forecast": obj({
            "time": field("string", "2026-03-01T12:00:00Z", fmt="date-time", v31=v31),
            "temperatureC": field("number", 7.5, v31=v31),
            "precipitationMm": field("number", 0.4, v31=v31, nullable=True),
            "windKph": field("number", 22, v31=v31),
            "summary": field("string", "Light rain", v31=v31),
        }),
        "Observation": obj({
            "stationId": field("string", "st_brae", v31=v31),
            "observedAt": field("string", "2026-03-01T11:50:00Z", fmt="date-time", v31=v31),
            "temperatureC": field("number", 6.9, v31=v31),
            "humidity": field("integer", 81, v31=v31),
            "pressureHpa": field("number", 1008.2, v31=v31, nullable=True),
        }),
        "Station": obj({
            "id": field("string", "st_brae", v31=v31),
            "name": field("string", "Braeburn Hill", v31=v31),
            "latitude": field("number", 56.12, v31=v31),
            "longitude": field("number", -3.94, v31=v31),
            "elevationM": field("integer", 212, v31=v31, nullable=True),
        }, required=["name", "latitude", "longitude"]),
        "Alert": obj({
            "id": field("string", "al_301", v31=v31),
            "severity": field("string", "amber", enum=["yellow", "amber", "red"], v31=v31),
            "headline": field("string", "Gale force winds along the coast", v31=v31),
            "expires": field("string", "2026-03-02T06:00:00Z", fmt="date-time", v31=v31),
        }),
        "Subscription": obj({
            "id": field("string", "sub_9", v31=v31),
            "callbackUrl": field("string", "https://example.test/hooks/weather", fmt="uri", v31=v31),
            "regions": {"type": "array", "items": field("string", "coast-north", v31=v31)},
        }, required=["callbackUrl"]),
    }
    where = [param("lat", "query", "number", required=True, example=56.12),
             param("lon", "query", "number", required=True, example=-3.94)]
    ops = [
        ("/forecast/hourly", "get", op("getHourlyForecast", "Hourly forecast for a location",
                                       "Returns the next 48 hours of forecasts for a latitude and longitude.", "Forecasts",
                                       params=where, response={"type": "array", "items": ref("Forecast")})),
        ("/forecast/daily", "get", op("getDailyForecast", "Daily forecast for a location",
                                      "Returns up to 14 days of daily highs, lows and precipitation.", "Forecasts",
                                      params=where + [param("days", "query", "integer", example=7)],
                                      response={"type": "array", "items": ref("Forecast")})),
        ("/forecast/marine", "get", op("getMarineForecast", "Marine forecast",
                                       "Wave height, swell and wind forecasts for a coastal point.", "Forecasts",
                                       params=where, response={"type": "array", "items": ref("Forecast")})),
        ("/observations/latest", "get", op("getLatestObservation", "Latest observation near a location",
                                           "Returns the most recent reading of the nearest station.", "Observations",
                                           params=where, response=ref("Observation"))),
        ("/observations/history", "get", op("getObservationHistory", "Observation history of a station",
                                            "Returns hourly readings of one station between two dates.", "Observations",
                                            params=[param("stationId", "query", required=True, example="st_brae"),
                                                    param("from", "query", required=True, example="2026-02-01"),
                                                    param("to", "query", required=True, example="2026-02-07")],
                                            response={"type": "array", "items": ref("Observation")})),
        ("/stations", "get", op("listStations", "List weather stations",
                                "Returns stations, optionally only those inside a bounding box.", "Stations",
                                params=[param("bbox", "query", description="minLon,minLat,maxLon,maxLat")],
                                response={"type": "array", "items": ref("Station")})),
        ("/stations", "post", op("registerStation", "Register a station",
                                 "Registers a private weather station so that it can upload readings.", "Stations",
                                 body=ref("Station"), response=ref("Station"), status="201")),
        ("/stations/{stationId}", "get", op("getStation", "Get a station",
                                            "Returns the location and metadata of one station.", "Stations",
                                            params=[param("stationId", "path")], response=ref("Station"))),
        ("/stations/{stationId}", "delete", op("deleteStation", "Remove a station",
                                               "Deregisters a private station; its readings are kept for 30 days.", "Stations",
                                               params=[param("stationId", "path")], status="204")),
        ("/stations/{stationId}/readings", "post", op("uploadReading", "Upload a reading",
                                                      "Uploads one observation from a private station.", "Stations",
                                                      params=[param("stationId", "path")], body=ref("Observation"),
                                                      status="202")),
        ("/alerts", "get", op("listAlerts", "List active weather alerts",
                              "Returns warnings that are in force for a region.", "Alerts",
                              params=[param("region", "query", required=True, example="coast-north")],
                              response={"type": "array", "items": ref("Alert")})),
        ("/alerts/{alertId}", "get", op("getAlert", "Get an alert",
                                        "Returns the full text and affected areas of one alert.", "Alerts",
                                        params=[param("alertId", "path")], response=ref("Alert"))),
        ("/subscriptions", "post", op("createSubscription", "Subscribe to alerts",
                                      "Registers a webhook that is called when an alert is issued for the regions.", "Alerts",
                                      body=ref("Subscription"), response=ref("Subscription"), status="201")),
        ("/subscriptions/{subscriptionId}", "delete", op("deleteSubscription", "Unsubscribe from alerts",
                                                         "Stops webhook calls for a subscription.", "Alerts",
                                                         params=[param("subscriptionId", "path")], status="204")),
        ("/air-quality", "get", op("getAirQuality", "Air quality index",
                                   "Returns the air quality index and pollutant levels for a location.", "Observations",
                                   params=where, response=obj({"aqi": field("integer", 42, v31=v31)}))),
        ("/astronomy", "get", op("getAstronomy", "Sunrise, sunset and moon phase",
                                 "Returns sun and moon times for a date and location.", "Forecasts",
                                 params=where + [param("date", "query", example="2026-03-01")],
                                 response=obj({"sunrise": field("string", "06:58", v31=v31),
                                               "sunset": field("string", "17:49", v31=v31)}))),
    ]
    return "weather.json", document(
        "3.1.0", "Skyline Weather API",
        "Forecasts, observations and alerts from a network of weather stations.",
        [{"url": "https://{region}.weather.test/v2", "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}}}],
        schemas, ops,
        security_schemes={"AppId": {"type": "apiKey", "in": "query", "name": "appid"}},
        security=[{"AppId": []}])


def payments():
    schemas = {
        "Customer": obj({
            "id": field("string", "cus_4QX"),
            "email": field("string", "ada@example.test", fmt="email"),
            "name": field("string", "Ada Lindqvist"),
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        }),
        "CustomerInput": obj({
            "email": field("string", "ada@example.test", fmt="email"),
            "name": field("string", "Ada Lindqvist"),
        }, required=["email"]),
        "Charge": obj({
            "id": field("string", "ch_81b"),
            "amount": field("integer", 2500, description="Amount in minor units."),
            "currency": field("string", "eur"),
            "customer": field("string", "cus_4QX"),
            "status": field("string", "succeeded", enum=["pending", "succeeded", "failed"]),
        }),
        "ChargeInput": obj({
            "amount": field("integer", 2500),
            "currency": field("string", "eur"),
            "customer": field("string", "cus_4QX"),
            "description": field("string", "Order 5521"),
        }, required=["amount", "currency"]),
        "Refund": obj({
            "id": field("string", "re_12"),
            "charge": field("string", "ch_81b"),
            "amount": field("integer", 1000),
        }),
        "RefundInput": obj({"charge": field("string", "ch_81b"), "amount": field("integer", 1000)}, required=["charge"]),
        "Payout": obj({
            "id": field("string", "po_3"),
            "amount": field("integer", 120000),
            "arrivalDate": field("string", "2026-03-04", fmt="date"),
        }),
        "WebhookEndpoint": obj({
            "id": field("string", "we_7"),
            "url": field("string", "https://shop.example.test/webhooks", fmt="uri"),
            "events": {"type": "array", "items": field("string", "charge.succeeded")},
        }, required=["url", "events"]),
        "Balance": obj({"available": field("integer", 98000), "pending": field("integer", 2500),
                        "currency": field("string", "eur")}),
    }
    form = "application/x-www-form-urlencoded"
    idp = lambda name: param(name, "path")
    ops = [
        ("/v1/customers", "get", op("listCustomers", "List customers",
                                    "Returns customers, most recently created first.", "Customers",
                                    params=[param("limit", "query", "integer", example=10),
                                            param("email", "query", description="Only customers with this email.")],
                                    response={"type": "array", "items": ref("Customer")})),
        ("/v1/customers", "post", op("createCustomer", "Create a customer",
                                     "Creates a customer that charges and payment methods can be attached to.", "Customers",
                                     body=ref("CustomerInput"), media=form, response=ref("Customer"))),
        ("/v1/customers/{customerId}", "get", op("retrieveCustomer", "Retrieve a customer",
                                                 "Returns a customer by id.", "Customers",
                                                 params=[idp("customerId")], response=ref("Customer"))),
        ("/v1/customers/{customerId}", "post", op("updateCustomer", "Update a customer",
                                                  "Updates the email or name of a customer.", "Customers",
                                                  params=[idp("customerId")], body=ref("CustomerInput"), media=form,
                                                  response=ref("Customer"))),
        ("/v1/customers/{customerId}", "delete", op("deleteCustomer", "Delete a customer",
                                                    "Deletes a customer and detaches its payment methods.", "Customers",
                                                    params=[idp("customerId")])),
        ("/v1/charges", "get", op("listCharges", "List charges",
                                  "Returns charges, optionally only those of one customer.", "Charges",
                                  params=[param("customer", "query")],
                                  response={"type": "array", "items": ref("Charge")})),
        ("/v1/charges", "post", op("createCharge", "Create a charge",
                                   "Charges a customer's default payment method in the sandbox.", "Charges",
                                   params=[param("Idempotency-Key", "header", required=True, example="c0ffee-42",
                                                 description="Retries with the same key do not charge twice.")],
                                   body=ref("ChargeInput"), media=form, response=ref("Charge"))),
        ("/v1/charges/{chargeId}", "get", op("retrieveCharge", "Retrieve a charge",
                                             "Returns the details and status of a charge.", "Charges",
                                             params=[idp("chargeId")], response=ref("Charge"))),
        ("/v1/charges/{chargeId}/capture", "post", op("captureCharge", "Capture a charge",
                                                      "Captures the funds of an authorised, uncaptured charge.", "Charges",
                                                      params=[idp("chargeId")], response=ref("Charge"))),
        ("/v1/refunds", "post", op("createRefund", "Refund a charge",
                                   "Refunds all or part of a charge.", "Refunds",
                                   body=ref("RefundInput"), media=form, response=ref("Refund"))),
        ("/v1/refunds", "get", op("listRefunds", "List refunds",
                                  "Returns refunds, newest first.", "Refunds",
                                  response={"type": "array", "items": ref("Refund")})),
        ("/v1/refunds/{refundId}", "get", op("retrieveRefund", "Retrieve a refund",
                                             "Returns one refund.", "Refunds",
                                             params=[idp("refundId")], response=ref("Refund"))),
        ("/v1/payouts", "get", op("listPayouts", "List payouts",
                                  "Returns transfers from the sandbox balance to the bank account.", "Payouts",
                                  response={"type": "array", "items": ref("Payout")})),
        ("/v1/payouts", "post", op("createPayout", "Create a payout",
                                   "Sends part of the available balance to the linked bank account.", "Payouts",
                                   body=obj({"amount": field("integer", 50000)}, required=["amount"]), media=form,
                                   response=ref("Payout"))),
        ("/v1/balance", "get", op("getBalance", "Get the balance",
                                  "Returns available and pending funds of the sandbox account.", "Balance",
                                  response=ref("Balance"))),
        ("/v1/webhook_endpoints", "post", op("createWebhookEndpoint", "Create a webhook endpoint",
                                             "Registers a URL that receives event notifications.", "Webhooks",
                                             body=ref("WebhookEndpoint"), response=ref("WebhookEndpoint"))),
        ("/v1/webhook_endpoints", "get", op("listWebhookEndpoints", "List webhook endpoints",
                                            "Returns the registered webhook endpoints.", "Webhooks",
                                            response={"type": "array", "items": ref("WebhookEndpoint")})),
        ("/v1/webhook_endpoints/{endpointId}", "delete", op("deleteWebhookEndpoint", "Delete a webhook endpoint",
                                                            "Stops sending events to an endpoint.", "Webhooks",
                                                            params=[idp("endpointId")])),
        ("/v1/events/{eventId}", "get", op("retrieveEvent", "Retrieve an event",
                                           "Returns one event with the object it concerns.", "Webhooks",
                                           params=[idp("eventId")])),
    ]
    return "payments.json", document(
        "3.0.3", "Sandpiper Payments Sandbox",
        "A test-mode payments API: customers, charges, refunds, payouts and webhooks.",
        [{"url": "https://sandbox.sandpiper-pay.test"}], schemas, ops,
        security_schemes={"BasicAuth": {"type": "http", "scheme": "basic"}},
        security=[{"BasicAuth": []}])


def tasks():
    v31 = True
    schemas = {
        "Project": obj({
            "id": field("string", "prj_12", v31=v31),
            "name": field("string", "Harbour relaunch", v31=v31),
            "archived": field("boolean", False, v31=v31),
        }, required=["name"]),
        "Task": obj({
            "id": field("string", "tsk_804", v31=v31),
            "title": field("string", "Draft the press release", v31=v31),
            "status": field("string", "todo", enum=["todo", "doing", "done"], v31=v31),
            "assignee": field("string", "usr_5", v31=v31, nullable=True),
            "due": field("string", "2026-03-15", fmt="date", v31=v31, nullable=True),
            "labels": {"type": "array", "items": field("string", "marketing", v31=v31)},
            "subtasks": {"type": "array", "items": ref("Task")},
        }, required=["title"]),
        "Comment": obj({
            "id": field("string", "cm_3", v31=v31),
            "author": field("string", "usr_5", v31=v31),
            "body": field("string", "Sent the draft to legal.", v31=v31),
        }, required=["body"]),
        "Label": obj({
            "name": field("string", "marketing", v31=v31),
            "colour": field("string", "#2a9d8f", v31=v31),
        }, required=["name"]),
        "User": obj({
            "id": field("string", "usr_5", v31=v31),
            "displayName": field("string", "Noor Haddad", v31=v31),
            "email": field("string", "noor@example.test", fmt="email", v31=v31),
        }),
    }
    ops = []
    ops += crud("project", "projects", "Project", "Projects", "/projects", "projectId",
                "Archived projects are left out unless asked for.",
                list_params=[param("includeArchived", "query", "boolean")])
    ops += crud("task", "tasks", "Task", "Tasks", "/projects/{projectId}/tasks", "taskId",
                "Tasks can be filtered by status and assignee.",
                list_params=[param("projectId", "path"), param("status", "query", enum=["todo", "doing", "done"])])
    # Nested resources need the project id on every operation.
    for path, method, operation in ops:
        if path.startswith("/projects/{projectId}/tasks"):
            names = [p.get("name") for p in operation.get("parameters", [])]
            if "projectId" not in names:
                operation.setdefault("parameters", []).insert(0, param("projectId", "path"))
    ops += [
        ("/projects/{projectId}/tasks/{taskId}/comments", "get", op(
            "listTaskComments", "List comments on a task", "Returns the discussion of a task, oldest first.", "Comments",
            params=[param("projectId", "path"), param("taskId", "path")],
            response={"type": "array", "items": ref("Comment")})),
        ("/projects/{projectId}/tasks/{taskId}/comments", "post", op(
            "addTaskComment", "Comment on a task", "Adds a comment to a task and notifies its watchers.", "Comments",
            params=[param("projectId", "path"), param("taskId", "path")], body=ref("Comment"),
            response=ref("Comment"), status="201",
            samples=[("Node.js", "const request = require('request');\n\nrequest({\n  method: 'POST',\n  url: 'https://tasks.api.test/v3/projects/prj_12/tasks/tsk_804/comments',\n  headers: {Authorization: 'Bearer REPLACE_BEARER_TOKEN'},\n  body: {body: 'Sent the draft to legal.'},\n  json: true\n}, function (error, response, body) {\n  if (error) throw new Error(error);\n  console.log(body);\n});")],
            samples_key="x-codeSamples")),
        ("/projects/{projectId}/tasks/{taskId}/assign", "post", op(
            "assignTask", "Assign a task", "Sets the user responsible for a task.", "Tasks",
            params=[param("projectId", "path"), param("taskId", "path")],
            body=obj({"userId": field("string", "usr_5", v31=v31)}, required=["userId"]), response=ref("Task"))),
        ("/projects/{projectId}/tasks/{taskId}/complete", "post", op(
            "completeTask", "Mark a task as done", "Moves a task to done and records who completed it.", "Tasks",
            params=[param("projectId", "path"), param("taskId", "path")], response=ref("Task"))),
        ("/labels", "get", op("listLabels", "List labels", "Returns the labels of the workspace.", "Labels",
                              response={"type": "array", "items": ref("Label")})),
        ("/labels", "post", op("createLabel", "Create a label", "Creates a coloured label for tasks.", "Labels",
                               body=ref("Label"), response=ref("Label"), status="201")),
        ("/users/me", "get", op("getCurrentUser", "Get the current user",
                                "Returns the user the access token belongs to.", "Users", response=ref("User"))),
        ("/users", "get", op("listUsers", "List workspace members",
                             "Returns the members of the workspace.", "Users",
                             response={"type": "array", "items": ref("User")})),
        ("/search", "get", op("searchTasks", "Search tasks",
                              "Searches task titles and comments across all projects.", "Tasks",
                              params=[param("query", "query", required=True, example="press release")],
                              response={"type": "array", "items": ref("Task")})),
    ]
    return "tasks.yaml", document(
        "3.1.0", "Tallyboard Tasks",
        "Projects, tasks, comments and labels of a team task tracker.",
        [{"url": "https://tasks.api.test/v3"}], schemas, ops,
        security_schemes={"Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        security=[{"Bearer": []}])


def genomics():
    schemas = {
        "Sample": obj({
            "id": field("string", "smp_0192"),
            "organism": field("string", "Arabidopsis thaliana"),
            "tissue": field("string", "leaf"),
            "collectedOn": field("string", "2026-01-20", fmt="date"),
            "storage": field("string", "freezer-b/rack-3", nullable=True),
        }, required=["organism"]),
        "Run": obj({
            "id": field("string", "run_77"),
            "instrument": field("string", "seq-04"),
            "sampleIds": {"type": "array", "items": field("string", "smp_0192")},
            "readLength": field("integer", 150),
            "status": field("string", "queued", enum=["queued", "running", "finished", "failed"]),
        }, required=["sampleIds"]),
        "Variant": obj({
            "chromosome": field("string", "chr2"),
            "position": field("integer", 1938211),
            "reference": field("string", "A"),
            "alternate": field("string", "G"),
            "quality": field("number", 61.2),
        }),
        "PipelineJob": obj({
            "id": field("string", "job_5"),
            "pipeline": field("string", "variant-calling", enum=["alignment", "variant-calling", "rna-quant"]),
            "runId": field("string", "run_77"),
            "reference": field("string", "TAIR10"),
        }, required=["pipeline", "runId"]),
        "Plate": obj({
            "id": field("string", "pl_9"),
            "wells": field("integer", 96),
            "samples": {"type": "object", "additionalProperties": {"type": "string"}},
        }),
    }
    ops = []
    ops += crud("sample", "samples", "Sample", "Samples", "/samples", "sampleId",
                "Samples can be filtered by organism.",
                list_params=[param("organism", "query", example="Arabidopsis thaliana")])
    ops += crud("sequencing run", "sequencing runs", "Run", "Runs", "/runs", "runId",
                "Runs are listed newest first.", skip=("patch",))
    ops += crud("plate", "plates", "Plate", "Plates", "/plates", "plateId",
                "Plates hold up to 384 samples.", skip=("patch", "delete"))
    ops += [
        ("/runs/{runId}/qc", "get", op("getRunQc", "Quality metrics of a run",
                                       "Returns yield, Q30 fraction and duplication rate of a finished run.", "Runs",
                                       params=[param("runId", "path")],
                                       response=obj({"q30": field("number", 0.91), "yieldGb": field("number", 38.4)}))),
        ("/runs/{runId}/fastq", "get", op("getRunFastqLinks", "Download links for reads",
                                          "Returns signed links to the FASTQ files of a run.", "Runs",
                                          params=[param("runId", "path"), param("read", "query", "integer", example=1)])),
        ("/samples/{sampleId}/variants", "get", op("listSampleVariants", "List variants of a sample",
                                                   "Returns called variants in a genomic region.", "Variants",
                                                   params=[param("sampleId", "path"),
                                                           param("region", "query", required=True, example="chr2:1900000-2000000"),
                                                           param("minQuality", "query", "number", example=30)],
                                                   response={"type": "array", "items": ref("Variant")})),
        ("/jobs", "post", op("startPipelineJob", "Start a pipeline job",
                             "Queues an analysis pipeline on the reads of a run.", "Pipelines",
                             body=ref("PipelineJob"), response=ref("PipelineJob"), status="202")),
        ("/jobs/{jobId}", "get", op("getPipelineJob", "Get a pipeline job",
                                    "Returns the progress and outputs of a pipeline job.", "Pipelines",
                                    params=[param("jobId", "path")], response=ref("PipelineJob"))),
        ("/jobs/{jobId}/cancel", "post", op("cancelPipelineJob", "Cancel a pipeline job",
                                            "Stops a queued or running pipeline job.", "Pipelines",
                                            params=[param("jobId", "path")])),
        ("/references", "get", op("listReferenceGenomes", "List reference genomes",
                                  "Returns the reference assemblies pipelines can align against.", "Pipelines")),
    ]
    return "genomics.yaml", document(
        "3.0.3", "Helix Genomics Lab API",
        "Sample tracking, sequencing runs and analysis pipelines of a genomics core facility.",
        [{"url": "https://{site}.lims.helix.test/api", "variables": {"site": {"default": "north"}}}],
        schemas, ops,
        security_schemes={"LabOAuth": {"type": "oauth2", "flows": {"clientCredentials": {
            "tokenUrl": "https://auth.helix.test/token", "scopes": {"lims": "Read and write LIMS data"}}}}},
        security=[{"LabOAuth": ["lims"]}])


def transit():
    schemas = {
        "Stop": obj({
            "id": field("string", "stop_1180"),
            "name": field("string", "Canal Street"),
            "latitude": field("number", 52.37),
            "longitude": field("number", 4.89),
            "wheelchairAccessible": field("boolean", True),
        }),
        "Route": obj({
            "id": field("string", "rt_14"),
            "shortName": field("string", "14"),
            "mode": field("string", "tram", enum=["bus", "tram", "metro", "ferry"]),
            "colour": field("string", "#e63946"),
        }),
        "Departure": obj({
            "routeId": field("string", "rt_14"),
            "headsign": field("string", "Central Station"),
            "scheduled": field("string", "2026-03-01T08:14:00Z", fmt="date-time"),
            "expected": field("string", "2026-03-01T08:16:00Z", fmt="date-time", nullable=True),
        }),
        "Journey": obj({
            "legs": {"type": "array", "items": obj({"routeId": field("string", "rt_14"),
                                                    "from": field("string", "stop_1180"),
                                                    "to": field("string", "stop_2201")})},
            "durationMinutes": field("integer", 23),
        }),
        "Vehicle": obj({
            "id": field("string", "veh_606"),
            "routeId": field("string", "rt_14"),
            "latitude": field("number", 52.371),
            "longitude": field("number", 4.894),
            "occupancy": field("string", "many-seats", enum=["empty", "many-seats", "few-seats", "full"]),
        }),
        "Disruption": obj({
            "id": field("string", "dis_45"),
            "routes": {"type": "array", "items": field("string", "rt_14")},
            "message": field("string", "Diversion via Harbour Road until 18:00"),
        }),
    }
    lang = param("Accept-Language", "header", description="Language of names and messages.", example="en")
    ops = [
        ("/stops", "get", op("listStops", "List stops", "Returns stops, optionally those near a point.", "Stops",
                             params=[param("near", "query", example="52.37,4.89"), param("radius", "query", "integer", example=500), lang],
                             response={"type": "array", "items": ref("Stop")})),
        ("/stops/{stopId}", "get", op("getStop", "Get a stop", "Returns the name, location and facilities of a stop.", "Stops",
                                      params=[param("stopId", "path"), lang], response=ref("Stop"))),
        ("/stops/{stopId}/departures", "get", op("listDepartures", "Next departures from a stop",
                                                 "Returns real-time departures from a stop for the next hour.", "Departures",
                                                 params=[param("stopId", "path"), param("limit", "query", "integer", example=10)],
                                                 response={"type": "array", "items": ref("Departure")})),
        ("/stops/{stopId}/routes", "get", op("listStopRoutes", "Routes serving a stop",
                                             "Returns every route that calls at the stop.", "Stops",
                                             params=[param("stopId", "path")],
                                             response={"type": "array", "items": ref("Route")})),
        ("/routes", "get", op("listRoutes", "List routes", "Returns all routes, optionally of one mode.", "Routes",
                              params=[param("mode", "query", enum=["bus", "tram", "metro", "ferry"])],
                              response={"type": "array", "items": ref("Route")})),
        ("/routes/{routeId}", "get", op("getRoute", "Get a route", "Returns a route with its ordered stops.", "Routes",
                                        params=[param("routeId", "path")], response=ref("Route"))),
        ("/routes/{routeId}/timetable", "get", op("getTimetable", "Timetable of a route",
                                                  "Returns scheduled trips of a route on a service day.", "Routes",
                                                  params=[param("routeId", "path"), param("date", "query", required=True, example="2026-03-01")])),
        ("/routes/{routeId}/vehicles", "get", op("listRouteVehicles", "Live vehicles on a route",
                                                 "Returns positions and occupancy of the vehicles now on a route.", "Vehicles",
                                                 params=[param("routeId", "path")],
                                                 response={"type": "array", "items": ref("Vehicle")})),
        ("/vehicles/{vehicleId}", "get", op("getVehicle", "Get a vehicle", "Returns the live position of one vehicle.", "Vehicles",
                                            params=[param("vehicleId", "path")], response=ref("Vehicle"))),
        ("/journeys", "post", op("planJourney", "Plan a journey",
                                 "Finds the fastest connections between two stops for a departure time.", "Journeys",
                                 body=obj({"from": field("string", "stop_1180"), "to": field("string", "stop_2201"),
                                           "departAt": field("string", "2026-03-01T08:00:00Z", fmt="date-time")},
                                          required=["from", "to"]),
                                 response={"type": "array", "items": ref("Journey")})),
        ("/disruptions", "get", op("listDisruptions", "List disruptions",
                                   "Returns current diversions, delays and closures.", "Disruptions",
                                   response={"type": "array", "items": ref("Disruption")})),
        ("/disruptions/{disruptionId}", "get", op("getDisruption", "Get a disruption",
                                                  "Returns one disruption with the affected routes.", "Disruptions",
                                                  params=[param("disruptionId", "path")], response=ref("Disruption"))),
        ("/fares/estimate", "get", op("estimateFare", "Estimate a fare",
                                      "Estimates the fare between two stops for a passenger type.", "Fares",
                                      params=[param("from", "query", required=True, example="stop_1180"),
                                              param("to", "query", required=True, example="stop_2201"),
                                              param("passenger", "query", enum=["adult", "child", "senior"], example="adult")],
                                      response=obj({"amount": field("number", 3.4), "currency": field("string", "EUR")}))),
        ("/feedback", "post", op("sendFeedback", "Send feedback",
                                 "Sends a passenger's feedback about a trip or a stop.", "Feedback",
                                 body=obj({"topic": field("string", "cleanliness"), "message": field("string", "Stop shelter glass is broken."),
                                           "stopId": field("string", "stop_1180")}, required=["message"]),
                                 status="202")),
    ]
    return "transit.json", document(
        "3.0.3", "Canalway Transit API",
        "Stops, routes, real-time departures and journey planning for a city's public transport.",
        [{"url": "https://api.canalway.test/transit/v1"}], schemas, ops)


def greenhouse():
    v31 = True
    schemas = {
        "Greenhouse": obj({
            "id": field("string", "gh_2", v31=v31),
            "name": field("string", "South glasshouse", v31=v31),
            "areaM2": field("number", 420, v31=v31),
        }, required=["name"]),
        "Sensor": obj({
            "id": field("string", "sn_311", v31=v31),
            "kind": field("string", "soil-moisture", enum=["temperature", "humidity", "soil-moisture", "co2", "light"], v31=v31),
            "zone": field("string", "bed-4", v31=v31),
            "batteryPercent": field("integer", 76, v31=v31, nullable=True),
        }, required=["kind"]),
        "Reading": obj({
            "sensorId": field("string", "sn_311", v31=v31),
            "at": field("string", "2026-03-01T09:00:00Z", fmt="date-time", v31=v31),
            "value": field("number", 31.5, v31=v31),
            "unit": field("string", "%", v31=v31),
        }),
        "Schedule": obj({
            "id": field("string", "ir_8", v31=v31),
            "zone": field("string", "bed-4", v31=v31),
            "cron": field("string", "0 6 * * *", v31=v31),
            "durationMinutes": field("integer", 12, v31=v31),
            "enabled": field("boolean", True, v31=v31),
        }, required=["zone", "cron"]),
        "Threshold": obj({
            "metric": field("string", "co2", v31=v31),
            "min": field("number", 400, v31=v31, nullable=True),
            "max": field("number", 1200, v31=v31, nullable=True),
        }),
    }
    gh = param("greenhouseId", "path")
    ops = []
    ops += crud("greenhouse", "greenhouses", "Greenhouse", "Greenhouses", "/greenhouses", "greenhouseId",
                "Each greenhouse lists its zones.", skip=("delete",))
    ops += [
        ("/greenhouses/{greenhouseId}/sensors", "get", op("listSensors", "List sensors in a greenhouse",
                                                          "Returns the sensors installed in a greenhouse, with battery levels.", "Sensors",
                                                          params=[gh], response={"type": "array", "items": ref("Sensor")})),
        ("/greenhouses/{greenhouseId}/sensors", "post", op("installSensor", "Install a sensor",
                                                           "Registers a new sensor in a zone of a greenhouse.", "Sensors",
                                                           params=[gh], body=ref("Sensor"), response=ref("Sensor"), status="201")),
        ("/sensors/{sensorId}", "delete", op("removeSensor", "Remove a sensor",
                                             "Deregisters a sensor; its readings are kept.", "Sensors",
                                             params=[param("sensorId", "path")], status="204")),
        ("/sensors/{sensorId}/readings", "get", op("listReadings", "Readings of a sensor",
                                                   "Returns readings of one sensor in a time window.", "Readings",
                                                   params=[param("sensorId", "path"),
                                                           param("since", "query", required=True, example="2026-03-01T00:00:00Z"),
                                                           param("until", "query", example="2026-03-01T12:00:00Z")],
                                                   response={"type": "array", "items": ref("Reading")})),
        ("/sensors/{sensorId}/readings", "post", op("pushReadings", "Push readings",
                                                    "Uploads a batch of readings from a sensor gateway.", "Readings",
                                                    params=[param("sensorId", "path")],
                                                    body={"type": "array", "items": ref("Reading")}, status="202")),
        ("/greenhouses/{greenhouseId}/climate", "get", op("getClimate", "Current climate",
                                                          "Returns the latest temperature, humidity, CO2 and light of each zone.", "Readings",
                                                          params=[gh])),
        ("/greenhouses/{greenhouseId}/schedules", "get", op("listSchedules", "List irrigation schedules",
                                                            "Returns the irrigation schedules of a greenhouse.", "Irrigation",
                                                            params=[gh], response={"type": "array", "items": ref("Schedule")})),
        ("/greenhouses/{greenhouseId}/schedules", "post", op("createSchedule", "Create an irrigation schedule",
                                                             "Adds a recurring irrigation slot for a zone.", "Irrigation",
                                                             params=[gh], body=ref("Schedule"), response=ref("Schedule"), status="201")),
        ("/schedules/{scheduleId}", "put", op("replaceSchedule", "Replace an irrigation schedule",
                                              "Replaces a schedule's zone, timing and duration.", "Irrigation",
                                              params=[param("scheduleId", "path")], body=ref("Schedule"), response=ref("Schedule"))),
        ("/schedules/{scheduleId}", "delete", op("deleteSchedule", "Delete an irrigation schedule",
                                                 "Stops and removes a schedule.", "Irrigation",
                                                 params=[param("scheduleId", "path")], status="204")),
        ("/zones/{zoneId}/water", "post", op("waterZone", "Water a zone now",
                                             "Opens the valves of a zone for the given number of minutes.", "Irrigation",
                                             params=[param("zoneId", "path")],
                                             body=obj({"minutes": field("integer", 5, v31=v31)}, required=["minutes"]),
                                             status="202")),
        ("/greenhouses/{greenhouseId}/thresholds", "put", op("setThresholds", "Set alarm thresholds",
                                                             "Sets the limits that raise climate alarms.", "Alarms",
                                                             params=[gh], body={"type": "array", "items": ref("Threshold")})),
        ("/alarms", "get", op("listAlarms", "List open alarms",
                              "Returns climate and hardware alarms that are not acknowledged yet.", "Alarms")),
        ("/alarms/{alarmId}/acknowledge", "post", op("acknowledgeAlarm", "Acknowledge an alarm",
                                                     "Marks an alarm as seen by a grower.", "Alarms",
                                                     params=[param("alarmId", "path")])),
    ]
    return "greenhouse.json", document(
        "3.1.0", "Verdant Greenhouse Sensors",
        "Climate sensors, readings and irrigation control for commercial greenhouses.",
        [{"url": "https://iot.verdant.test/api/v1"}], schemas, ops,
        security_schemes={"DeviceToken": {"type": "apiKey", "in": "header", "name": "X-Device-Token"}},
        security=[{"DeviceToken": []}])


def museum():
    schemas = {
        "Exhibition": obj({
            "id": field("string", "ex_31"),
            "title": field("string", "Tides and Timekeepers"),
            "opens": field("string", "2026-04-01", fmt="date"),
            "closes": field("string", "2026-09-30", fmt="date"),
            "gallery": field("string", "East Wing"),
        }),
        "TicketOrder": obj({
            "exhibitionId": field("string", "ex_31"),
            "visitDate": field("string", "2026-05-09", fmt="date"),
            "adults": field("integer", 2),
            "children": field("integer", 1),
            "email": field("string", "visitor@example.test", fmt="email"),
        }, required=["visitDate", "adults", "email"]),
        "Ticket": obj({
            "id": field("string", "tk_7781"),
            "barcode": field("string", "MT-7781-Q"),
            "visitDate": field("string", "2026-05-09", fmt="date"),
            "status": field("string", "valid", enum=["valid", "used", "refunded"]),
        }),
        "Member": obj({
            "id": field("string", "mb_40"),
            "name": field("string", "Jonas Weber"),
            "tier": field("string", "friend", enum=["friend", "patron", "benefactor"]),
            "renews": field("string", "2027-01-31", fmt="date"),
        }, required=["name", "tier"]),
        "Event": obj({
            "id": field("string", "evt_12"),
            "title": field("string", "Curator's late-night tour"),
            "startsAt": field("string", "2026-05-15T19:00:00Z", fmt="date-time"),
            "capacity": field("integer", 30),
        }),
    }
    public = []
    ops = [
        ("/exhibitions", "get", op("listExhibitions", "List exhibitions",
                                   "Returns current and upcoming exhibitions.", "Exhibitions", security=public,
                                   params=[param("when", "query", enum=["current", "upcoming", "past"], example="current")],
                                   response={"type": "array", "items": ref("Exhibition")})),
        ("/exhibitions/{exhibitionId}", "get", op("getExhibition", "Get an exhibition",
                                                  "Returns the description, dates and gallery of an exhibition.", "Exhibitions",
                                                  security=public, params=[param("exhibitionId", "path")],
                                                  response=ref("Exhibition"))),
        ("/opening-hours", "get", op("getOpeningHours", "Opening hours",
                                     "Returns opening hours for a date, including holiday closures.", "Visit",
                                     security=public, params=[param("date", "query", example="2026-05-09")])),
        ("/availability", "get", op("getAvailability", "Ticket availability",
                                    "Returns free timed-entry slots for a date.", "Tickets", security=public,
                                    params=[param("date", "query", required=True, example="2026-05-09"),
                                            param("exhibitionId", "query", example="ex_31")])),
        ("/tickets", "post", op("buyTickets", "Buy tickets",
                                "Books timed-entry tickets and emails them to the visitor.", "Tickets",
                                body=ref("TicketOrder"), response={"type": "array", "items": ref("Ticket")}, status="201")),
        ("/tickets/{ticketId}", "get", op("getTicket", "Get a ticket", "Returns a ticket and whether it is still valid.", "Tickets",
                                          params=[param("ticketId", "path")], response=ref("Ticket"))),
        ("/tickets/{ticketId}/refund", "post", op("refundTicket", "Refund a ticket",
                                                  "Refunds an unused ticket up to 24 hours before the visit.", "Tickets",
                                                  params=[param("ticketId", "path")], response=ref("Ticket"))),
        ("/tickets/{ticketId}/scan", "post", op("scanTicket", "Scan a ticket at the door",
                                                "Validates a ticket's barcode at the entrance and marks it used.", "Tickets",
                                                params=[param("ticketId", "path"),
                                                        param("X-Gate", "header", required=True, example="gate-2")],
                                                response=ref("Ticket"))),
        ("/members", "post", op("createMember", "Join the membership",
                                "Creates a membership with unlimited free entry.", "Members",
                                body=ref("Member"), response=ref("Member"), status="201")),
        ("/members/{memberId}", "get", op("getMember", "Get a member", "Returns a member's tier and renewal date.", "Members",
                                          params=[param("memberId", "path")], response=ref("Member"))),
        ("/members/{memberId}/renew", "post", op("renewMembership", "Renew a membership",
                                                 "Extends a membership by one year.", "Members",
                                                 params=[param("memberId", "path")], response=ref("Member"))),
        ("/events", "get", op("listEvents", "List events", "Returns talks, tours and workshops.", "Events",
                              security=public, params=[param("from", "query", example="2026-05-01")],
                              response={"type": "array", "items": ref("Event")})),
        ("/events/{eventId}/bookings", "post", op("bookEvent", "Book an event",
                                                  "Reserves places on a talk, tour or workshop.", "Events",
                                                  params=[param("eventId", "path")],
                                                  body=obj({"places": {"type": "integer", "example": 2}}, required=["places"]),
                                                  status="201")),
        ("/collection/search", "get", op("searchCollection", "Search the collection",
                                         "Searches catalogued objects by keyword, maker or period.", "Collection",
                                         security=public,
                                         params=[param("q", "query", required=True, example="astrolabe"),
                                                 param("period", "query", example="18th century")])),
        ("/collection/objects/{objectId}", "get", op("getCollectionObject", "Get a collection object",
                                                     "Returns the catalogue entry and images of an object.", "Collection",
                                                     security=public, params=[param("objectId", "path")])),
    ]
    # Unquoted integer status codes (`200:`), as hand-written YAML specs often have them.
    for _, _, operation in ops:
        operation["responses"] = {int(code): response for code, response in operation["responses"].items()}
    return "museum.yaml", document(
        "3.0.3", "Lantern Museum Tickets API",
        "Exhibitions, timed tickets, memberships and events of a maritime museum.",
        [{"url": "https://tickets.lantern-museum.test/api"}], schemas, ops,
        security_schemes={"Session": {"type": "apiKey", "in": "cookie", "name": "lantern_session"}},
        security=[{"Session": []}])


class PlainDumper(yaml.SafeDumper):
    """No anchors/aliases for shared objects; multi-line strings as literal blocks."""

    def ignore_aliases(self, data):
        return True


def _str_representer(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


PlainDumper.add_representer(str, _str_representer)


def write(name, doc):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as handle:
        if name.endswith(".json"):
            json.dump(doc, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        else:
            yaml.dump(doc, handle, Dumper=PlainDumper, sort_keys=False, allow_unicode=True, width=100)


def main():
    os.makedirs(OUT, exist_ok=True)
    for make in (bookshop, weather, payments, tasks, genomics, transit, greenhouse, museum):
        name, doc = make()
        write(name, doc)
        operations = sum(1 for item in doc["paths"].values() for key in item if key != "parameters")
        print(f"{name}: {operations} operations")


if __name__ == "__main__":
    main()
