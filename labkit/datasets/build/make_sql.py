#!/usr/bin/env python3
"""Build the "sql" task: a small shop SQLite database plus question -> SQL pairs.

Outputs (all deterministic for a given --seed):
  labkit/datasets/sql/shop.sqlite        the database (rebuilt atomically)
  labkit/datasets/sql/schema.sql         compact CREATE TABLE text used in prompts
  labkit/datasets/build/sql_source.jsonl {"question": ..., "query": ...} per line

Gold query style (one canonical style so the model learns one):
  * uppercase keywords, single spaces, no trailing semicolon
  * single-table queries use bare column names; joins use the aliases
    c = customers, p = products, o = orders, oi = order_items
  * JOIN ... ON <left>.<col> = <right>.<col>; ascending ORDER BY omits ASC
  * year / month filters: strftime('%Y', order_date) = '2023',
    strftime('%Y-%m', order_date) = '2023-05'; date ranges use BETWEEN

Every query is executed during generation and again during verification; it must
return at least one row (and aggregates must not be 0 / NULL). ORDER BY ... LIMIT
queries are only kept when there is no tie at the cut-off, so the gold rows are
well defined. Order dates and product prices are unique for the same reason.

Usage: python3 labkit/datasets/build/make_sql.py [--seed 1234]
Standard library only.
"""
import argparse
import collections
import datetime as dt
import json
import os
import random
import re
import sqlite3
import statistics
import string
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATASETS = os.path.dirname(HERE)
SQL_DIR = os.path.join(DATASETS, "sql")
DB_PATH = os.path.join(SQL_DIR, "shop.sqlite")
SCHEMA_PATH = os.path.join(SQL_DIR, "schema.sql")
OUT_PATH = os.path.join(HERE, "sql_source.jsonl")

SCHEMA = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, country TEXT, signup_year INTEGER);",
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), order_date TEXT, status TEXT);",
    "CREATE TABLE order_items (order_id INTEGER REFERENCES orders(id), product_id INTEGER REFERENCES products(id), quantity INTEGER);",
]

# ----------------------------------------------------------------------------
# Raw data
# ----------------------------------------------------------------------------
CITIES = [  # (city, country, weight)
    ("New York", "USA", 3), ("Chicago", "USA", 2), ("Austin", "USA", 2), ("Seattle", "USA", 2),
    ("London", "UK", 3), ("Manchester", "UK", 2),
    ("Berlin", "Germany", 3), ("Munich", "Germany", 2), ("Hamburg", "Germany", 1),
    ("Paris", "France", 3), ("Lyon", "France", 1),
    ("Madrid", "Spain", 2), ("Barcelona", "Spain", 2),
    ("Rome", "Italy", 1), ("Milan", "Italy", 2),
    ("Toronto", "Canada", 2), ("Vancouver", "Canada", 1),
    ("Tokyo", "Japan", 2), ("Sydney", "Australia", 2), ("Melbourne", "Australia", 1),
]
FIRST = ["Alice", "Bruno", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kara", "Liam", "Maya", "Nina", "Omar", "Paula", "Quinn", "Rosa", "Sam", "Tara",
         "Umar", "Vera", "Wei", "Xena", "Yusuf", "Zoe", "Aaron", "Bianca", "Chen", "Diana",
         "Emil", "Fiona", "Gabriel", "Hannah", "Ivan", "Julia", "Kenji", "Laura", "Marco", "Nora"]
LAST = ["Smith", "Garcia", "Muller", "Rossi", "Dubois", "Tanaka", "Brown", "Lopez", "Schmidt",
        "Martin", "Wilson", "Kim", "Novak", "Silva", "Becker", "Moreau", "Clark", "Patel",
        "Fischer", "Romano", "Walker", "Young", "Costa", "Meyer"]
PRODUCTS = [  # (name, category, price) -- prices unique
    ("Wireless Mouse", "Electronics", 24.99), ("Mechanical Keyboard", "Electronics", 89.99),
    ("USB-C Hub", "Electronics", 39.50), ("Bluetooth Speaker", "Electronics", 59.00),
    ("Noise Cancelling Headphones", "Electronics", 199.00),
    ("Python Cookbook", "Books", 45.00), ("Mystery Novel", "Books", 12.99),
    ("Cooking Basics", "Books", 22.50), ("World Atlas", "Books", 35.75),
    ("Sci-Fi Anthology", "Books", 18.40),
    ("Cotton T-Shirt", "Clothing", 15.00), ("Denim Jacket", "Clothing", 74.90),
    ("Running Shoes", "Clothing", 95.00), ("Wool Scarf", "Clothing", 27.30),
    ("Rain Coat", "Clothing", 110.00),
    ("Coffee Maker", "Home", 64.99), ("Desk Lamp", "Home", 29.95), ("Throw Pillow", "Home", 16.80),
    ("Chef Knife", "Home", 54.25), ("Ceramic Vase", "Home", 33.10),
    ("Yoga Mat", "Sports", 25.60), ("Tennis Racket", "Sports", 129.00),
    ("Water Bottle", "Sports", 11.50), ("Dumbbell Set", "Sports", 149.99),
    ("Cycling Helmet", "Sports", 69.00),
    ("Puzzle Box", "Toys", 19.95), ("Building Blocks", "Toys", 42.00), ("Toy Robot", "Toys", 57.80),
    ("Board Game", "Toys", 31.25), ("Plush Bear", "Toys", 14.20),
]
NEVER_ORDERED = {"World Atlas", "Ceramic Vase"}
N_CUSTOMERS, N_ORDERS, N_ITEMS, N_SILENT = 40, 150, 400, 4
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def build_db(rng, path):
    names = set()
    customers = []
    cw = [w for _, _, w in CITIES]
    for cid in range(1, N_CUSTOMERS + 1):
        first = FIRST[cid - 1]
        while True:
            name = f"{first} {rng.choice(LAST)}"
            if name not in names:
                names.add(name)
                break
        city, country, _ = rng.choices(CITIES, weights=cw)[0]
        year = rng.choices(range(2019, 2025), weights=[2, 3, 3, 3, 2, 1])[0]
        customers.append((cid, name, city, country, year))

    products = [(i + 1, n, c, p) for i, (n, c, p) in enumerate(PRODUCTS)]
    assert len({p[3] for p in products}) == len(products)

    # orders: unique dates, ids in date order; a few customers never order
    start = dt.date(2022, 1, 1)
    days = sorted(rng.sample(range((dt.date(2024, 12, 31) - start).days + 1), N_ORDERS))
    silent = set(rng.sample(range(1, N_CUSTOMERS + 1), N_SILENT))
    active = [c for c in customers if c[0] not in silent]
    act_w = [rng.choice([1, 1, 2, 3, 4]) for _ in active]
    orders = []
    for oid, d in enumerate(days, 1):
        date = start + dt.timedelta(days=d)
        pool = [(c, w) for c, w in zip(active, act_w) if c[4] <= date.year]
        cust = rng.choices([c for c, _ in pool], weights=[w for _, w in pool])[0]
        if date >= dt.date(2024, 12, 1):
            status = rng.choice(["pending", "shipped"])
        elif date >= dt.date(2024, 10, 15):
            status = rng.choices(["shipped", "delivered", "pending"], weights=[3, 3, 1])[0]
        else:
            status = rng.choices(["delivered", "cancelled", "returned"], weights=[14, 3, 2])[0]
        orders.append((oid, cust[0], date.isoformat(), status))

    # order items: 1..5 distinct products per order, exactly N_ITEMS rows
    sizes = [1] * N_ORDERS
    while sum(sizes) < N_ITEMS:
        i = rng.randrange(N_ORDERS)
        if sizes[i] < 5:
            sizes[i] += 1
    orderable = [p for p in products if p[1] not in NEVER_ORDERED]
    pop = [rng.choice([1, 2, 2, 3, 4, 5]) for _ in orderable]
    items = []
    for (oid, *_), k in zip(orders, sizes):
        chosen = []
        while len(chosen) < k:
            p = rng.choices(orderable, weights=pop)[0]
            if p[0] not in chosen:
                chosen.append(p[0])
        for pid in chosen:
            q = rng.choices([1, 2, 3, 4, 5, 6], weights=[40, 25, 14, 9, 6, 3])[0]
            items.append((oid, pid, q))

    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".sqlite", dir=os.path.dirname(path))
    os.close(fd)
    os.unlink(tmp)
    try:
        con = sqlite3.connect(tmp)
        for stmt in SCHEMA:
            con.execute(stmt)
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
        con.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", orders)
        con.executemany("INSERT INTO order_items VALUES (?, ?, ?)", items)
        con.commit()
        con.execute("VACUUM")
        con.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_schema(path):
    text = "\n".join(SCHEMA) + "\n"
    fd, tmp = tempfile.mkstemp(suffix=".sql", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return text


# ----------------------------------------------------------------------------
# Slot values, all read back from the real database
# ----------------------------------------------------------------------------
def col(con, sql):
    return [r[0] for r in con.execute(sql)]


def nice_date(iso):
    d = dt.date.fromisoformat(iso)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def load_slots(con, rng):
    S = {}
    S["city"] = col(con, "SELECT DISTINCT city FROM customers ORDER BY city")
    S["country"] = col(con, "SELECT DISTINCT country FROM customers ORDER BY country")
    S["category"] = col(con, "SELECT DISTINCT category FROM products ORDER BY category")
    S["product"] = col(con, "SELECT name FROM products ORDER BY id")
    S["customer"] = col(con, "SELECT name FROM customers ORDER BY id")
    S["status"] = col(con, "SELECT DISTINCT status FROM orders ORDER BY status")
    S["year"] = col(con, "SELECT DISTINCT strftime('%Y', order_date) FROM orders ORDER BY 1")
    S["syear"] = [str(y) for y in col(con, "SELECT DISTINCT signup_year FROM customers ORDER BY 1")]
    S["ym"] = col(con, "SELECT DISTINCT strftime('%Y-%m', order_date) FROM orders ORDER BY 1")
    S["oid"] = col(con, "SELECT id FROM orders ORDER BY id")
    S["date"] = col(con, "SELECT order_date FROM orders ORDER BY id")
    S["price"] = [10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 75, 80, 100, 120, 150]
    S["letter"] = sorted({n[0] for n in S["customer"]})
    words = set()
    for n in S["product"]:
        words.update(w for w in re.split(r"[ -]", n) if len(w) >= 3)
    S["word"] = sorted(words)
    # random calendar dates (for before/after/between) inside the order period
    start = dt.date(2022, 1, 10)
    S["cal"] = sorted({(start + dt.timedelta(days=rng.randrange(1070))).isoformat() for _ in range(80)})
    return S


def fill_product(*keys, **fixed):
    """Return a generator of fillings: cartesian product of slot lists."""
    def gen(S):
        out = [{}]
        for k in keys:
            name, _, src = k.partition("=")
            src = src or name
            out = [dict(f, **{name: v}) for f in out for v in S[src]]
        for k, vals in fixed.items():
            out = [dict(f, **{k: v}) for f in out for v in vals]
        return out
    return gen


def derive(f):
    """Extra display fields used by question templates."""
    g = dict(f)
    if "ym" in g:
        y, m = g["ym"].split("-")
        g["month"] = f"{MONTHS[int(m) - 1]} {y}"
    for k in ("d", "d1", "d2"):
        if k in g:
            g[k + "_nice"] = nice_date(g[k])
    if "cities" in g:
        g["city1"], g["city2"] = g["cities"]
    if "cats" in g:
        g["cat1"], g["cat2"] = g["cats"]
    if "stats" in g:
        g["st1"], g["st2"] = g["stats"]
    return g


# ----------------------------------------------------------------------------
# Intents: family, slot generator, canonical query template, >=4 paraphrases.
# tie: optional SQL returning the full ordered list of sort keys (for LIMIT n).
# ----------------------------------------------------------------------------
P_JOIN = "order_items oi JOIN products p ON oi.product_id = p.id"
O_JOIN = "orders o JOIN customers c ON o.customer_id = c.id"
OP_JOIN = "orders o JOIN order_items oi ON o.id = oi.order_id JOIN products p ON oi.product_id = p.id"
CO_JOIN = "customers c JOIN orders o ON c.id = o.customer_id"
COP_JOIN = CO_JOIN + " JOIN order_items oi ON o.id = oi.order_id"
YEAR = "strftime('%Y', {col}) = '{year}'"


def intents():
    I = []

    openers = ["Give me the ", "Tell me the ", "I need the ", "Get the ", "Find the ", "Show me the "]
    rot = [0]

    def add(family, gen, query, questions, tie=None, cap=None):
        assert len(questions) >= 4, query
        # vary the over-used "Give me the ..." opener so no prefix dominates
        qs = []
        for q in questions:
            if q.startswith("Give me the "):
                q = openers[rot[0] % len(openers)] + q[len("Give me the "):]
                rot[0] += 1
            qs.append(q)
        questions = qs
        I.append(dict(family=family, gen=gen, query=query, questions=questions, tie=tie, cap=cap))

    def pairs(src, key):
        def gen(S):
            v = S[src]
            return [{key: (a, b)} for i, a in enumerate(v) for b in v[i + 1:]]
        return gen

    # ---------------- filters ----------------
    add("filter", fill_product("city"), "SELECT name FROM customers WHERE city = '{city}'", [
        "Which customers live in {city}?", "List the names of customers from {city}.",
        "Show me all customers located in {city}.", "Who are our customers in {city}?",
        "Give me the names of customers based in {city}."])
    add("filter", fill_product("country"), "SELECT name FROM customers WHERE country = '{country}'", [
        "Which customers are from {country}?", "List all customers in {country}.",
        "Names of customers whose country is {country}.", "Show the customers based in {country}.",
        "Who are the customers located in {country}?"])
    add("filter", fill_product("category"), "SELECT name FROM products WHERE category = '{category}'", [
        "Which products are in the {category} category?", "List all {category} products.",
        "Show me the products we sell in {category}.", "Give me the names of products in {category}.",
        "What products belong to the {category} category?"])
    add("filter", fill_product("price"), "SELECT name FROM products WHERE price < {price}", [
        "Which products cost less than {price} dollars?", "List products priced under ${price}.",
        "Show me products cheaper than {price}.", "What products have a price below {price}?",
        "Names of products that cost under {price}."])
    add("filter", fill_product("price"), "SELECT name, price FROM products WHERE price > {price}", [
        "Which products cost more than {price}? Show name and price.",
        "List names and prices of products priced above ${price}.",
        "Show products more expensive than {price} with their prices.",
        "Give me the name and price of every product over {price} dollars.",
        "Products with a price greater than {price}: names and prices."])
    add("filter", lambda S: [{"lo": a, "hi": b} for a in S["price"] for b in S["price"] if b - a >= 10],
        "SELECT name FROM products WHERE price BETWEEN {lo} AND {hi}", [
        "Which products cost between {lo} and {hi} dollars?", "List products priced from ${lo} to ${hi}.",
        "Show products with a price between {lo} and {hi}.",
        "Give me products in the {lo} to {hi} price range.",
        "What products are priced between {lo} and {hi}?"])
    add("filter", fill_product("word"), "SELECT name FROM products WHERE name LIKE '%{word}%'", [
        "Which products have '{word}' in their name?", "List products whose name contains {word}.",
        "Find all products with the word {word} in the name.",
        "Show products named like '{word}'.", "Any products with '{word}' in the product name?"])
    add("filter", fill_product("letter"), "SELECT name FROM customers WHERE name LIKE '{letter}%'", [
        "Which customers have a name starting with {letter}?",
        "List customers whose name begins with the letter {letter}.",
        "Show customers with names that start with '{letter}'.",
        "Find customers whose names begin with {letter}.",
        "Customer names starting with {letter}?"])
    add("filter", pairs("city", "cities"), "SELECT name FROM customers WHERE city IN ('{city1}', '{city2}')", [
        "Which customers live in {city1} or {city2}?", "List customers from either {city1} or {city2}.",
        "Show me customers located in {city1} or {city2}.",
        "Give me the names of customers based in {city1} or {city2}.",
        "Who are our customers in {city1} and {city2}?"], cap=7)
    add("filter", pairs("category", "cats"),
        "SELECT name FROM products WHERE category IN ('{cat1}', '{cat2}')", [
        "Which products are in the {cat1} or {cat2} categories?",
        "List all {cat1} and {cat2} products.", "Show products from the {cat1} or {cat2} category.",
        "Give me product names in either {cat1} or {cat2}.",
        "What do we sell in {cat1} and {cat2}?"])
    add("filter", pairs("status", "stats"), "SELECT id FROM orders WHERE status IN ('{st1}', '{st2}')", [
        "Which orders are {st1} or {st2}?", "List the IDs of orders with status {st1} or {st2}.",
        "Show order ids whose status is either '{st1}' or '{st2}'.",
        "Give me all orders that are {st1} or {st2}.",
        "Find the orders in status {st1} or {st2}."])
    add("filter", fill_product("syear"), "SELECT name FROM customers WHERE signup_year = {syear}", [
        "Which customers signed up in {syear}?", "List customers who joined in {syear}.",
        "Show me the customers whose signup year is {syear}.",
        "Who registered as a customer in {syear}?", "Names of customers that signed up during {syear}."])
    add("filter", fill_product("syear"), "SELECT name FROM customers WHERE signup_year < {syear}", [
        "Which customers signed up before {syear}?", "List customers who joined earlier than {syear}.",
        "Show customers with a signup year before {syear}.",
        "Who registered prior to {syear}?", "Names of customers that signed up before {syear}."])
    add("filter", fill_product("syear"), "SELECT name, city FROM customers WHERE signup_year > {syear}", [
        "Which customers signed up after {syear}? Include their city.",
        "List names and cities of customers who joined after {syear}.",
        "Show customers with a signup year later than {syear}, with city.",
        "Give me name and city for customers registered after {syear}.",
        "Customers who signed up after {syear}: name and city."])
    add("filter", fill_product("status"), "SELECT id, order_date FROM orders WHERE status = '{status}'", [
        "Which orders are {status}? Show id and date.", "List the id and date of all {status} orders.",
        "Show orders with status '{status}' and their dates.",
        "Give me every {status} order with its order date.",
        "Find ids and order dates of orders marked {status}."])
    add("filter", fill_product("product"), "SELECT price FROM products WHERE name = '{product}'", [
        "How much does the {product} cost?", "What is the price of {product}?",
        "Give me the price of the {product}.", "What's the {product} priced at?",
        "Price of product '{product}'?"])
    add("filter", fill_product("product"), "SELECT category FROM products WHERE name = '{product}'", [
        "What category is the {product} in?", "Which category does {product} belong to?",
        "Tell me the category of the {product}.", "In what category is {product} listed?",
        "Category of product '{product}'?"])
    add("filter", fill_product("customer"), "SELECT city, country FROM customers WHERE name = '{customer}'", [
        "Where does {customer} live (city and country)?", "What city and country is {customer} from?",
        "Give me the city and country of customer {customer}.",
        "Which city is {customer} located in, and what country?",
        "Location of {customer}: city and country?"])
    add("filter", fill_product("customer"), "SELECT signup_year FROM customers WHERE name = '{customer}'", [
        "When did {customer} sign up?", "What year did {customer} join?",
        "In which year did {customer} register?", "Give me the signup year of {customer}.",
        "Signup year for customer {customer}?"])
    add("filter", fill_product("category", "price"),
        "SELECT name FROM products WHERE category = '{category}' AND price < {price}", [
        "Which {category} products cost less than {price}?",
        "List {category} items priced under ${price}.",
        "Show products in {category} cheaper than {price} dollars.",
        "Give me {category} products with a price below {price}.",
        "What can I buy in {category} for under {price}?"], cap=7)
    add("filter", fill_product("country", "syear"),
        "SELECT name FROM customers WHERE country = '{country}' AND signup_year >= {syear}", [
        "Which customers from {country} signed up in {syear} or later?",
        "List {country} customers who joined in {syear} or after.",
        "Show customers in {country} with a signup year of at least {syear}.",
        "Customers based in {country} registered since {syear}?",
        "Give me {country} customers whose signup year is {syear} or later."], cap=7)
    add("filter", fill_product("country", "city"),
        "SELECT name FROM customers WHERE country = '{country}' AND city <> '{city}'", [
        "Which customers in {country} do not live in {city}?",
        "List {country} customers outside {city}.",
        "Show customers from {country} who are not in {city}.",
        "Give me the {country} customers not based in {city}."], cap=6)

    # ---------------- counts ----------------
    add("count", fill_product("city"), "SELECT COUNT(*) FROM customers WHERE city = '{city}'", [
        "How many customers live in {city}?", "Count the customers located in {city}.",
        "What's the number of customers from {city}?", "Number of customers based in {city}?",
        "Tell me how many customers we have in {city}."])
    add("count", fill_product("country"), "SELECT COUNT(*) FROM customers WHERE country = '{country}'", [
        "How many customers are from {country}?", "Count customers in {country}.",
        "What is the number of customers in {country}?", "Total customers based in {country}?",
        "Give me the customer count for {country}."])
    add("count", fill_product("category"), "SELECT COUNT(*) FROM products WHERE category = '{category}'", [
        "How many products are in the {category} category?", "Count the {category} products.",
        "What's the number of products in {category}?", "Number of items we sell in {category}?",
        "Tell me how many {category} products there are."])
    add("count", fill_product("status"), "SELECT COUNT(*) FROM orders WHERE status = '{status}'", [
        "How many orders are {status}?", "Count the {status} orders.",
        "What's the number of orders with status {status}?",
        "Number of orders marked as '{status}'?", "Give me the total count of {status} orders."])
    add("count", fill_product("year"), "SELECT COUNT(*) FROM orders WHERE " + YEAR.format(col="order_date", year="{year}"), [
        "How many orders were placed in {year}?", "Count the orders from {year}.",
        "What's the number of orders made during {year}?", "Total number of orders in {year}?",
        "Tell me how many orders we received in {year}."])
    add("count", fill_product("price"), "SELECT COUNT(*) FROM products WHERE price > {price}", [
        "How many products cost more than {price}?", "Count products priced above ${price}.",
        "What's the number of products over {price} dollars?",
        "Number of products with a price greater than {price}?",
        "Tell me how many products are more expensive than {price}."])
    add("count", fill_product("syear"), "SELECT COUNT(*) FROM customers WHERE signup_year = {syear}", [
        "How many customers signed up in {syear}?", "Count the customers who joined in {syear}.",
        "What's the number of signups in {syear}?", "Number of customers registered in {syear}?",
        "Give me the count of customers with signup year {syear}."])
    add("count", fill_product("customer"),
        "SELECT COUNT(*) FROM " + O_JOIN + " WHERE c.name = '{customer}'", [
        "How many orders has {customer} placed?", "Count the orders made by {customer}.",
        "What's the number of orders from {customer}?", "Number of orders placed by {customer}?",
        "Tell me how many times {customer} has ordered."])
    add("count", fill_product("oid"), "SELECT COUNT(*) FROM order_items WHERE order_id = {oid}", [
        "How many line items are in order {oid}?", "Count the line items in order #{oid}.",
        "What's the number of distinct products in order {oid}?",
        "Number of order lines for order {oid}?", "How many different products does order {oid} contain?"])
    add("count", fill_product("year"),
        "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE " + YEAR.format(col="order_date", year="{year}"), [
        "How many different customers ordered in {year}?",
        "Count the distinct customers who placed orders in {year}.",
        "What's the number of unique customers with an order in {year}?",
        "Number of customers who bought something in {year}?",
        "Tell me how many unique buyers we had in {year}."])
    add("count", fill_product("product"),
        "SELECT COUNT(*) FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "How many orders include the {product}?", "Count the orders containing {product}.",
        "What's the number of orders that have a {product} in them?",
        "Number of orders with {product}?", "In how many orders does the {product} appear?"])
    add("count", fill_product("city"),
        "SELECT COUNT(*) FROM " + O_JOIN + " WHERE c.city = '{city}'", [
        "How many orders came from customers in {city}?", "Count orders placed by {city} customers.",
        "What's the number of orders from {city}?", "Number of orders shipped to customers in {city}?",
        "Tell me how many orders customers in {city} made."])
    add("count", fill_product("status", "year"),
        "SELECT COUNT(*) FROM orders WHERE status = '{status}' AND " + YEAR.format(col="order_date", year="{year}"), [
        "How many {status} orders were there in {year}?", "Count {status} orders from {year}.",
        "What's the number of orders placed in {year} that are {status}?",
        "Number of {year} orders with status {status}?",
        "Give me the count of {status} orders in {year}."])
    add("count", fill_product(), "SELECT COUNT(*) FROM customers", [
        "How many customers do we have?", "Count all customers.", "What's the total number of customers?",
        "Number of customers in the database?", "Give me the customer count."])
    add("count", fill_product(), "SELECT COUNT(*) FROM products", [
        "How many products do we sell?", "Count all products.", "What's the total number of products?",
        "Number of products in the catalog?", "Give me the product count."])
    add("count", fill_product(), "SELECT COUNT(*) FROM orders", [
        "How many orders are there in total?", "Count all orders.", "What's the total number of orders?",
        "Number of orders ever placed?", "Give me the order count."])

    # ---------------- sums ----------------
    add("sum", fill_product("product"), "SELECT SUM(oi.quantity) FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "How many units of {product} have been sold?", "Total quantity sold of the {product}?",
        "What's the total number of {product} units ordered?",
        "Give me the total quantity ordered for {product}.", "Sum of quantities sold for {product}."])
    add("sum", fill_product("product"),
        "SELECT SUM(oi.quantity * p.price) FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "What is the total revenue from {product}?", "How much money has the {product} brought in?",
        "Give me the total sales amount for {product}.", "Total revenue generated by {product} sales?",
        "Sum of quantity times price for the {product}."])
    add("sum", fill_product("category"),
        "SELECT SUM(oi.quantity * p.price) FROM " + P_JOIN + " WHERE p.category = '{category}'", [
        "What is the total revenue from {category} products?",
        "How much have we sold in {category}, in dollars?",
        "Give me total sales for the {category} category.",
        "Total revenue of the {category} category?", "Sum up the {category} sales revenue."])
    add("sum", fill_product("category"),
        "SELECT SUM(oi.quantity) FROM " + P_JOIN + " WHERE p.category = '{category}'", [
        "How many {category} units have been sold in total?",
        "Total quantity of {category} products ordered?",
        "What's the total number of items sold in {category}?",
        "Give me the total units ordered from the {category} category.",
        "Sum of quantities for {category} products."])
    add("sum", fill_product("oid"),
        "SELECT SUM(oi.quantity * p.price) FROM " + P_JOIN + " WHERE oi.order_id = {oid}", [
        "What is the total value of order {oid}?", "How much did order #{oid} cost in total?",
        "Give me the total amount of order {oid}.", "Total price of order number {oid}?",
        "What was order {oid} worth?"])
    add("sum", fill_product("oid"), "SELECT SUM(quantity) FROM order_items WHERE order_id = {oid}", [
        "How many units were in order {oid}?", "Total quantity of items in order #{oid}?",
        "What's the total number of units ordered in order {oid}?",
        "Give me the sum of quantities for order {oid}.", "How many pieces did order {oid} contain?"])
    add("sum", fill_product("customer"),
        "SELECT SUM(oi.quantity * p.price) FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id WHERE c.name = '{customer}'", [
        "How much has {customer} spent in total?", "What is the total spending of {customer}?",
        "Give me the total amount {customer} has paid for orders.",
        "Total value of all orders by {customer}?", "Sum of everything {customer} has bought, in dollars."])
    add("sum", fill_product("year"),
        "SELECT SUM(oi.quantity * p.price) FROM " + OP_JOIN + " WHERE " + YEAR.format(col="o.order_date", year="{year}"), [
        "What was the total revenue in {year}?", "How much did we sell in {year}, in dollars?",
        "Give me total sales for {year}.", "Total revenue from orders placed in {year}?",
        "Sum of order value over {year}."])
    add("sum", fill_product("ym"),
        "SELECT SUM(oi.quantity) FROM " + OP_JOIN.split(" JOIN products")[0] + " WHERE strftime('%Y-%m', o.order_date) = '{ym}'", [
        "How many units were sold in {month}?", "Total quantity ordered during {month}?",
        "What's the total number of items sold in {month}?",
        "Give me the sum of quantities ordered in {month}.", "Units sold in {month} in total?"])
    add("sum", fill_product("category"), "SELECT SUM(price) FROM products WHERE category = '{category}'", [
        "What is the sum of prices of all {category} products?",
        "Add up the prices of the {category} products.",
        "Total list price of everything in {category}?",
        "Give me the combined price of all {category} items.",
        "How much would one of each {category} product cost?"])

    # ---------------- averages ----------------
    add("avg", fill_product("category"), "SELECT AVG(price) FROM products WHERE category = '{category}'", [
        "What is the average price of {category} products?", "Average price in the {category} category?",
        "Give me the mean price of {category} items.", "How much does a {category} product cost on average?",
        "Compute the average {category} product price."])
    add("avg", fill_product(), "SELECT AVG(price) FROM products", [
        "What is the average product price?", "Average price across all products?",
        "Give me the mean price of our products.", "How much does a product cost on average?",
        "Compute the overall average price."])
    add("avg", fill_product("product"), "SELECT AVG(oi.quantity) FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "What is the average quantity per order line for {product}?",
        "On average, how many {product} units are bought at once?",
        "Average order quantity of the {product}?",
        "Give me the mean quantity ordered for {product}.",
        "How many units of {product} does a typical order line have?"])
    add("avg", fill_product("category"),
        "SELECT AVG(oi.quantity) FROM " + P_JOIN + " WHERE p.category = '{category}'", [
        "What is the average quantity ordered for {category} products?",
        "Average units per order line in {category}?",
        "Give me the mean order quantity in the {category} category.",
        "On average, how many {category} items are ordered per line?",
        "Compute the average quantity of {category} order items."])
    add("avg", fill_product("country"), "SELECT AVG(signup_year) FROM customers WHERE country = '{country}'", [
        "What is the average signup year of customers in {country}?",
        "Average signup year for {country} customers?",
        "Give me the mean signup year of customers from {country}.",
        "On average, when did {country} customers join?",
        "Compute the average signup year in {country}."])
    add("avg", fill_product("customer"),
        "SELECT AVG(p.price) FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id WHERE c.name = '{customer}'", [
        "What is the average price of products bought by {customer}?",
        "Average unit price of items {customer} ordered?",
        "Give me the mean price of the products {customer} purchased.",
        "On average, how expensive are the items {customer} buys?",
        "Compute the average product price over {customer}'s order lines."])

    # ---------------- min / max ----------------
    add("minmax", fill_product("category"), "SELECT MAX(price) FROM products WHERE category = '{category}'", [
        "What is the highest price in {category}?", "Most expensive price among {category} products?",
        "Give me the maximum price of a {category} product.",
        "What's the top price in the {category} category?", "Max price of {category} items?"])
    add("minmax", fill_product("category"), "SELECT MIN(price) FROM products WHERE category = '{category}'", [
        "What is the lowest price in {category}?", "Cheapest price among {category} products?",
        "Give me the minimum price of a {category} product.",
        "What's the smallest price in the {category} category?", "Min price of {category} items?"])
    add("minmax", fill_product("customer"), "SELECT MIN(o.order_date) FROM " + O_JOIN + " WHERE c.name = '{customer}'", [
        "When did {customer} place their first order?", "What is the earliest order date for {customer}?",
        "Give me the date of {customer}'s first order.", "First order date of {customer}?",
        "On what date did {customer} first order?"])
    add("minmax", fill_product("customer"), "SELECT MAX(o.order_date) FROM " + O_JOIN + " WHERE c.name = '{customer}'", [
        "When did {customer} last place an order?", "What is the most recent order date for {customer}?",
        "Give me the date of {customer}'s latest order.", "Last order date of {customer}?",
        "On what date did {customer} order most recently?"])
    add("minmax", fill_product("product"), "SELECT MAX(oi.quantity) FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "What is the largest quantity of {product} in a single order line?",
        "Max units of {product} bought at once?",
        "Give me the biggest quantity ever ordered for {product}.",
        "Highest order quantity for the {product}?",
        "What's the most {product} units on one order line?"])
    add("minmax", fill_product("country"), "SELECT MIN(signup_year) FROM customers WHERE country = '{country}'", [
        "What is the earliest signup year among {country} customers?",
        "When did the first customer from {country} sign up?",
        "Give me the minimum signup year in {country}.",
        "Earliest year a {country} customer joined?", "First signup year for {country}?"])
    add("minmax", fill_product("status"), "SELECT MIN(order_date), MAX(order_date) FROM orders WHERE status = '{status}'", [
        "What are the first and last order dates of {status} orders?",
        "Give me the earliest and latest dates for orders that are {status}.",
        "Date range of {status} orders: min and max order date?",
        "When was the first {status} order, and when was the last?",
        "Earliest and most recent order date with status '{status}'?"])
    add("minmax", fill_product("year"), "SELECT MIN(order_date) FROM orders WHERE " + YEAR.format(col="order_date", year="{year}"), [
        "What was the date of the first order in {year}?", "Earliest order date in {year}?",
        "Give me the first order date of {year}.", "When was the first order placed in {year}?",
        "On which date did {year}'s first order come in?"])
    add("minmax", fill_product("city"), "SELECT MAX(signup_year) FROM customers WHERE city = '{city}'", [
        "What is the latest signup year among customers in {city}?",
        "When did the newest {city} customer sign up?",
        "Give me the most recent signup year in {city}.",
        "Max signup year of customers from {city}?", "Latest year a customer in {city} joined?"])
    add("minmax", fill_product(), "SELECT MIN(price), MAX(price) FROM products", [
        "What are the lowest and highest product prices?", "Give me the min and max price of our products.",
        "Price range of the catalog: cheapest and most expensive price?",
        "What's the minimum and maximum price across products?",
        "Lowest and highest price we charge?"])

    # ---------------- ORDER BY ... LIMIT ----------------
    nlist = {"n": [2, 3, 4, 5, 6, 7, 8, 10]}
    add("orderby", fill_product(**nlist), "SELECT name FROM products ORDER BY price DESC LIMIT {n}", [
        "What are the {n} most expensive products?", "List the top {n} products by price.",
        "Show the {n} priciest items.", "Give me the {n} highest priced products.",
        "Which {n} products cost the most?"])
    add("orderby", fill_product(**nlist), "SELECT name, price FROM products ORDER BY price LIMIT {n}", [
        "What are the {n} cheapest products and their prices?",
        "List the {n} lowest priced products with prices.",
        "Show the {n} least expensive items and what they cost.",
        "Give me name and price of the {n} cheapest products.",
        "Which {n} products cost the least? Include price."])
    add("orderby", fill_product("category"),
        "SELECT name FROM products WHERE category = '{category}' ORDER BY price DESC LIMIT 1", [
        "What is the most expensive {category} product?", "Which {category} item costs the most?",
        "Give me the priciest product in {category}.", "Name the top-priced product in the {category} category.",
        "Most expensive product in {category}?"])
    add("orderby", fill_product("category"),
        "SELECT name FROM products WHERE category = '{category}' ORDER BY price LIMIT 1", [
        "What is the cheapest {category} product?", "Which {category} item costs the least?",
        "Give me the lowest priced product in {category}.",
        "Name the least expensive product in the {category} category.", "Cheapest product in {category}?"])
    add("orderby", fill_product("category", n=[2, 3]),
        "SELECT name FROM products WHERE category = '{category}' ORDER BY price DESC LIMIT {n}", [
        "What are the {n} most expensive {category} products?",
        "List the top {n} {category} items by price.",
        "Show the {n} priciest products in {category}.",
        "Which {n} products in {category} cost the most?"])
    add("orderby", fill_product(**nlist), "SELECT id FROM orders ORDER BY order_date DESC LIMIT {n}", [
        "What are the {n} most recent orders?", "List the ids of the latest {n} orders.",
        "Show the {n} newest orders.", "Give me the ids of the last {n} orders placed.",
        "Which {n} orders were placed most recently?"])
    add("orderby", fill_product(**nlist), "SELECT id FROM orders ORDER BY order_date LIMIT {n}", [
        "What were the first {n} orders ever placed?", "List the ids of the {n} oldest orders.",
        "Show the earliest {n} orders.", "Give me the ids of the {n} earliest orders.",
        "Which {n} orders came in first?"])
    add("orderby", fill_product("customer"),
        "SELECT o.id FROM " + O_JOIN + " WHERE c.name = '{customer}' ORDER BY o.order_date DESC LIMIT 1", [
        "What is the id of {customer}'s most recent order?", "Which order did {customer} place last?",
        "Give me the latest order id for {customer}.", "Most recent order by {customer}?",
        "Find the newest order from {customer}."])
    add("orderby", fill_product(n=[2, 3, 4, 5]),
        "SELECT p.name FROM " + P_JOIN + " GROUP BY p.id ORDER BY SUM(oi.quantity) DESC LIMIT {n}", [
        "What are the top {n} best-selling products by units?",
        "List the {n} products with the most units sold.",
        "Which {n} products sold the highest total quantity?",
        "Give me the {n} most popular products by quantity ordered.",
        "Top {n} products ranked by total units sold?"],
        tie="SELECT SUM(oi.quantity) FROM " + P_JOIN + " GROUP BY p.id ORDER BY SUM(oi.quantity) DESC")
    add("orderby", fill_product(n=[2, 3, 4, 5]),
        "SELECT c.name FROM " + O_JOIN + " GROUP BY c.id ORDER BY COUNT(*) DESC LIMIT {n}", [
        "Which {n} customers placed the most orders?", "Top {n} customers by number of orders?",
        "List the {n} customers with the highest order count.",
        "Give me the {n} most frequent buyers.", "Who are the {n} customers that ordered most often?"],
        tie="SELECT COUNT(*) FROM " + O_JOIN + " GROUP BY c.id ORDER BY COUNT(*) DESC")
    add("orderby", fill_product(n=[2, 3, 4, 5, 6]),
        "SELECT c.name FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id GROUP BY c.id ORDER BY SUM(oi.quantity * p.price) DESC LIMIT {n}", [
        "Who are the top {n} customers by total spending?", "Which {n} customers spent the most?",
        "List the {n} biggest spenders.", "Give me the {n} customers with the highest total order value.",
        "Top {n} customers ranked by money spent?"],
        tie="SELECT SUM(oi.quantity * p.price) FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id GROUP BY c.id ORDER BY 1 DESC")
    add("orderby", fill_product(n=[2, 3, 4]),
        "SELECT p.category FROM " + P_JOIN + " GROUP BY p.category ORDER BY SUM(oi.quantity * p.price) DESC LIMIT {n}", [
        "Which {n} categories bring in the most revenue?", "Top {n} categories by sales revenue?",
        "List the {n} highest earning product categories.",
        "Give me the {n} categories with the largest total sales."],
        tie="SELECT SUM(oi.quantity * p.price) FROM " + P_JOIN + " GROUP BY p.category ORDER BY 1 DESC")
    add("orderby", fill_product(),
        "SELECT p.name FROM " + P_JOIN + " GROUP BY p.id ORDER BY SUM(oi.quantity) DESC LIMIT 1", [
        "Which product has sold the most units?", "What is our best-selling product by quantity?",
        "Give me the product with the highest total units sold.", "Top selling product by units?",
        "Name the product ordered in the largest total quantity."],
        tie="SELECT SUM(oi.quantity) FROM " + P_JOIN + " GROUP BY p.id ORDER BY SUM(oi.quantity) DESC")
    add("orderby", fill_product(),
        "SELECT c.name FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id GROUP BY c.id ORDER BY SUM(oi.quantity * p.price) DESC LIMIT 1", [
        "Which customer has spent the most money?", "Who is our biggest spender?",
        "Give me the customer with the highest total spending.", "Top customer by total order value?",
        "Name the customer who spent the most overall."],
        tie="SELECT SUM(oi.quantity * p.price) FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id GROUP BY c.id ORDER BY 1 DESC")
    add("orderby", fill_product(),
        "SELECT p.category FROM " + P_JOIN + " GROUP BY p.category ORDER BY SUM(oi.quantity * p.price) DESC LIMIT 1", [
        "Which category brings in the most revenue?", "What is our top category by sales?",
        "Give me the category with the largest total revenue.", "Highest earning product category?",
        "Name the category with the most sales in dollars."],
        tie="SELECT SUM(oi.quantity * p.price) FROM " + P_JOIN + " GROUP BY p.category ORDER BY 1 DESC")
    add("orderby", fill_product("city"),
        "SELECT name FROM customers WHERE city = '{city}' ORDER BY name LIMIT 1", [
        "Which {city} customer comes first alphabetically?",
        "Give me the alphabetically first customer name in {city}.",
        "First customer from {city} when sorted by name?",
        "Sorting {city} customers by name, who is first?"])
    add("orderby", fill_product(), "SELECT city FROM customers GROUP BY city ORDER BY COUNT(*) DESC LIMIT 1", [
        "Which city has the most customers?", "What city are most of our customers in?",
        "Give me the city with the highest number of customers.", "Top city by customer count?",
        "Where do the largest number of customers live?"],
        tie="SELECT COUNT(*) FROM customers GROUP BY city ORDER BY 1 DESC")
    add("orderby", fill_product(), "SELECT country FROM customers GROUP BY country ORDER BY COUNT(*) DESC LIMIT 1", [
        "Which country has the most customers?", "What country are most customers from?",
        "Give me the country with the highest number of customers.", "Top country by customer count?",
        "From which country do we have the largest customer base?"],
        tie="SELECT COUNT(*) FROM customers GROUP BY country ORDER BY 1 DESC")
    add("orderby", fill_product("year"),
        "SELECT id FROM orders WHERE " + YEAR.format(col="order_date", year="{year}") + " ORDER BY order_date DESC LIMIT 1", [
        "What was the last order placed in {year}?", "Give me the id of the final order of {year}.",
        "Which order was the most recent one in {year}?", "Latest order id in {year}?",
        "Find the last order made during {year}."])

    # ---------------- GROUP BY / HAVING ----------------
    add("groupby", fill_product(), "SELECT city, COUNT(*) FROM customers GROUP BY city", [
        "How many customers are in each city?", "Count customers per city.",
        "Give me the number of customers by city.", "Show the customer count for every city.",
        "Break down our customers by city."])
    add("groupby", fill_product(), "SELECT country, COUNT(*) FROM customers GROUP BY country", [
        "How many customers are in each country?", "Count customers per country.",
        "Give me the number of customers by country.", "Show the customer count for every country.",
        "Break down the customer base by country."])
    add("groupby", fill_product(), "SELECT category, COUNT(*) FROM products GROUP BY category", [
        "How many products are in each category?", "Count products per category.",
        "Give me the number of products by category.", "Show the product count for every category.",
        "Break down the catalog by category."])
    add("groupby", fill_product(), "SELECT category, AVG(price) FROM products GROUP BY category", [
        "What is the average price in each category?", "Average product price per category?",
        "Give me the mean price by category.", "Show average prices for every category.",
        "Compute the average price for each product category."])
    add("groupby", fill_product(), "SELECT category, MAX(price) FROM products GROUP BY category", [
        "What is the highest price in each category?", "Max product price per category?",
        "Give me the top price for every category.", "Show the most expensive price by category.",
        "For each category, what is the maximum price?"])
    add("groupby", fill_product(), "SELECT status, COUNT(*) FROM orders GROUP BY status", [
        "How many orders are there per status?", "Count orders by status.",
        "Give me the number of orders for each status.", "Show the order count for every status.",
        "Break down orders by their status."])
    add("groupby", fill_product(), "SELECT signup_year, COUNT(*) FROM customers GROUP BY signup_year", [
        "How many customers signed up each year?", "Count signups per year.",
        "Give me the number of new customers by signup year.", "Show customer signups for every year.",
        "Break down customers by the year they joined."])
    add("groupby", fill_product(),
        "SELECT strftime('%Y', order_date), COUNT(*) FROM orders GROUP BY strftime('%Y', order_date)", [
        "How many orders were placed each year?", "Count orders per year.",
        "Give me the number of orders by year.", "Show yearly order counts.",
        "Break down orders by the year they were placed."])
    add("groupby", fill_product("year"),
        "SELECT strftime('%m', order_date), COUNT(*) FROM orders WHERE " + YEAR.format(col="order_date", year="{year}") + " GROUP BY strftime('%m', order_date)", [
        "How many orders were placed in each month of {year}?", "Count orders per month in {year}.",
        "Give me the monthly order counts for {year}.", "Show orders by month for {year}.",
        "Break down {year} orders by month."])
    add("groupby", fill_product(),
        "SELECT p.category, SUM(oi.quantity * p.price) FROM " + P_JOIN + " GROUP BY p.category", [
        "What is the total revenue for each category?", "Revenue per product category?",
        "Give me total sales by category.", "Show how much each category has sold in dollars.",
        "Break down revenue by category."])
    add("groupby", fill_product(),
        "SELECT p.name, SUM(oi.quantity) FROM " + P_JOIN + " GROUP BY p.id", [
        "How many units of each product have been sold?", "Total quantity sold per product?",
        "Give me units sold for every product.", "Show the quantity ordered for each product.",
        "Break down units sold by product."])
    add("groupby", fill_product(), "SELECT c.name, COUNT(*) FROM " + O_JOIN + " GROUP BY c.id", [
        "How many orders has each customer placed?", "Order count per customer?",
        "Give me the number of orders for every customer who ordered.",
        "Show each customer's name with their number of orders.",
        "Break down orders by customer."])
    add("groupby", fill_product(), "SELECT c.country, COUNT(*) FROM " + O_JOIN + " GROUP BY c.country", [
        "How many orders came from each country?", "Order count per customer country?",
        "Give me the number of orders by country.", "Show the orders per country.",
        "Break down orders by the customer's country."])
    add("groupby", fill_product("year"),
        "SELECT status, COUNT(*) FROM orders WHERE " + YEAR.format(col="order_date", year="{year}") + " GROUP BY status", [
        "How many orders of each status were placed in {year}?", "Count {year} orders by status.",
        "Give me the status breakdown of orders in {year}.", "Show order counts per status for {year}.",
        "For {year}, how many orders are in each status?"])
    add("groupby", fill_product("country"),
        "SELECT city, COUNT(*) FROM customers WHERE country = '{country}' GROUP BY city", [
        "How many customers are in each city of {country}?", "Count {country} customers per city.",
        "Give me the customer count by city within {country}.",
        "Show the number of customers in every {country} city.",
        "Break down {country} customers by city."])
    add("groupby", fill_product(k=[2, 3, 4]),
        "SELECT city FROM customers GROUP BY city HAVING COUNT(*) > {k}", [
        "Which cities have more than {k} customers?", "List cities with over {k} customers.",
        "Show the cities where we have more than {k} customers.",
        "Give me cities whose customer count exceeds {k}.", "Cities with customer count above {k}?"])
    add("groupby", fill_product(k=[2, 3, 4, 5, 6, 7]),
        "SELECT country FROM customers GROUP BY country HAVING COUNT(*) >= {k}", [
        "Which countries have at least {k} customers?", "List countries with {k} or more customers.",
        "Show countries where the customer count is at least {k}.",
        "Give me countries that have no fewer than {k} customers.",
        "Countries with a minimum of {k} customers?"])
    add("groupby", fill_product(p=[20, 30, 40, 50, 60, 70, 80]),
        "SELECT category FROM products GROUP BY category HAVING AVG(price) > {p}", [
        "Which categories have an average price above {p}?",
        "List categories whose mean product price exceeds ${p}.",
        "Show categories with average price greater than {p} dollars.",
        "Give me the categories averaging more than {p} per product.",
        "Categories with an average price over {p}?"])
    add("groupby", fill_product(k=[2, 3, 4, 5, 6, 7, 8]),
        "SELECT c.name FROM " + O_JOIN + " GROUP BY c.id HAVING COUNT(*) > {k}", [
        "Which customers have placed more than {k} orders?",
        "List customers with over {k} orders.", "Show customers who ordered more than {k} times.",
        "Give me the names of customers with more than {k} orders.",
        "Customers whose order count exceeds {k}?"])
    add("groupby", fill_product(k=[5, 8, 10, 12, 15, 18, 20]),
        "SELECT p.name FROM " + P_JOIN + " GROUP BY p.id HAVING COUNT(*) > {k}", [
        "Which products appear in more than {k} orders?",
        "List products ordered more than {k} times.",
        "Show products that are in over {k} orders.",
        "Give me the products with more than {k} order lines.",
        "Products included in more than {k} orders?"])
    add("groupby", fill_product(q=[10, 15, 20, 25, 30, 35, 40, 50]),
        "SELECT p.name FROM " + P_JOIN + " GROUP BY p.id HAVING SUM(oi.quantity) > {q}", [
        "Which products have sold more than {q} units?",
        "List products with total quantity sold above {q}.",
        "Show products whose units sold exceed {q}.",
        "Give me the products that sold over {q} units in total.",
        "Products with more than {q} units ordered?"])
    add("groupby", fill_product(k=[2, 3, 4]),
        "SELECT order_id FROM order_items GROUP BY order_id HAVING COUNT(*) > {k}", [
        "Which orders contain more than {k} different products?",
        "List orders with over {k} line items.", "Show order ids having more than {k} line items.",
        "Give me orders that include more than {k} products.",
        "Orders with more than {k} order lines?"])
    add("groupby", fill_product(v=[100, 150, 200, 250, 300, 400, 500, 600, 800]),
        "SELECT oi.order_id FROM " + P_JOIN + " GROUP BY oi.order_id HAVING SUM(oi.quantity * p.price) > {v}", [
        "Which orders are worth more than {v} dollars?", "List orders with a total value above ${v}.",
        "Show order ids whose total exceeds {v}.", "Give me orders totalling over {v}.",
        "Orders with total amount greater than {v}?"])
    add("groupby", fill_product(v=[500, 1000, 1500, 2000, 3000]),
        "SELECT c.name FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id GROUP BY c.id HAVING SUM(oi.quantity * p.price) > {v}", [
        "Which customers have spent more than {v} dollars?", "List customers with total spending above ${v}.",
        "Show customers whose purchases exceed {v} in total.",
        "Give me the customers who spent over {v}.", "Customers with lifetime spend greater than {v}?"])
    add("groupby", fill_product(v=[1000, 2000, 3000, 4000, 5000, 6000]),
        "SELECT p.category FROM " + P_JOIN + " GROUP BY p.category HAVING SUM(oi.quantity * p.price) > {v}", [
        "Which categories have revenue above {v}?", "List categories that sold more than ${v}.",
        "Show categories with total sales exceeding {v} dollars.",
        "Give me the categories whose revenue is over {v}.",
        "Categories with more than {v} in sales?"])

    # ---------------- joins ----------------
    add("join", fill_product("customer"),
        "SELECT o.id, o.order_date FROM " + O_JOIN + " WHERE c.name = '{customer}'", [
        "What orders has {customer} placed? Show id and date.",
        "List the ids and dates of {customer}'s orders.",
        "Show all orders made by {customer} with their dates.",
        "Give me every order from {customer}, with order date.",
        "Orders by customer {customer}: id and date?"])
    add("join", fill_product("oid"), "SELECT c.name FROM " + O_JOIN + " WHERE o.id = {oid}", [
        "Who placed order {oid}?", "Which customer made order #{oid}?",
        "Give me the customer name for order {oid}.", "Name of the customer behind order {oid}?",
        "Order {oid} was placed by which customer?"])
    add("join", fill_product("oid"), "SELECT p.name, oi.quantity FROM " + P_JOIN + " WHERE oi.order_id = {oid}", [
        "What products are in order {oid}, and how many of each?",
        "List the products and quantities of order #{oid}.",
        "Show the items in order {oid} with quantities.",
        "Give me product names and quantities for order {oid}.",
        "Contents of order {oid}: product and quantity?"])
    add("join", fill_product("status"), "SELECT DISTINCT c.name FROM " + CO_JOIN + " WHERE o.status = '{status}'", [
        "Which customers have a {status} order?", "List customers with at least one order that is {status}.",
        "Show the names of customers whose orders are {status}.",
        "Give me customers who have orders in status '{status}'.",
        "Who has an order marked {status}?"])
    add("join", fill_product("city"), "SELECT o.id, o.order_date FROM " + O_JOIN + " WHERE c.city = '{city}'", [
        "What orders were placed by customers in {city}? Show id and date.",
        "List order ids and dates for customers from {city}.",
        "Show orders from {city} customers with dates.",
        "Give me all orders placed from {city}, with the order date.",
        "Orders by customers living in {city}: id and date?"])
    add("join", fill_product("year"),
        "SELECT DISTINCT c.name FROM " + CO_JOIN + " WHERE " + YEAR.format(col="o.order_date", year="{year}"), [
        "Which customers placed an order in {year}?", "List customers who ordered during {year}.",
        "Show the names of customers with orders in {year}.",
        "Give me everyone who bought something in {year}.", "Who ordered from us in {year}?"])
    add("join", fill_product("product"),
        "SELECT oi.order_id, oi.quantity FROM " + P_JOIN + " WHERE p.name = '{product}'", [
        "Which orders include the {product}, and in what quantity?",
        "List order ids and quantities for {product}.",
        "Show every order containing {product} with the quantity.",
        "Give me the orders that bought {product} and how many.",
        "Orders with {product}: order id and quantity?"])
    add("join", fill_product("product"),
        "SELECT DISTINCT o.customer_id FROM " + OP_JOIN + " WHERE p.name = '{product}'", [
        "What are the ids of customers who bought the {product}?",
        "List customer ids that ordered {product}.",
        "Show the distinct customer ids with a {product} purchase.",
        "Give me ids of customers who purchased {product}.",
        "Customer ids of buyers of {product}?"])
    add("join", fill_product("product"),
        "SELECT DISTINCT c.name FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id WHERE p.name = '{product}'", [
        "Which customers bought the {product}?", "List the names of customers who ordered {product}.",
        "Who has purchased a {product}?", "Give me the customers that bought {product}.",
        "Show customers with an order containing {product}."], cap=6)
    add("join", fill_product("customer"),
        "SELECT DISTINCT p.name FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id WHERE c.name = '{customer}'", [
        "What products has {customer} bought?", "List the products ordered by {customer}.",
        "Which items did {customer} purchase?", "Give me the names of products {customer} has ordered.",
        "Show everything {customer} has bought."], cap=6)
    add("join", fill_product("category", "year"),
        "SELECT DISTINCT p.name FROM " + OP_JOIN + " WHERE p.category = '{category}' AND " + YEAR.format(col="o.order_date", year="{year}"), [
        "Which {category} products were ordered in {year}?",
        "List {category} items sold during {year}.",
        "Show the {category} products that appear in {year} orders.",
        "Give me {category} products purchased in {year}."], cap=6)
    add("join", fill_product("oid"), "SELECT c.city FROM " + O_JOIN + " WHERE o.id = {oid}", [
        "Which city did order {oid} come from?", "What is the city of the customer who placed order {oid}?",
        "Give me the customer city for order #{oid}.", "Order {oid} was placed from which city?",
        "City of the buyer of order {oid}?"])
    add("join", fill_product("country", "status"),
        "SELECT o.id FROM " + O_JOIN + " WHERE c.country = '{country}' AND o.status = '{status}'", [
        "Which orders from {country} customers are {status}?",
        "List {status} orders placed by customers in {country}.",
        "Show ids of {country} orders with status {status}.",
        "Give me the {status} orders from {country}.",
        "Orders by {country} customers that are {status}?"], cap=6)

    # ---------------- DISTINCT ----------------
    add("distinct", fill_product(), "SELECT DISTINCT city FROM customers", [
        "Which cities do our customers live in?", "List all distinct customer cities.",
        "Show the unique cities in the customers table.", "Give me every city we have customers in.",
        "What are the different cities of our customers?"])
    add("distinct", fill_product(), "SELECT DISTINCT country FROM customers", [
        "Which countries are our customers from?", "List all distinct customer countries.",
        "Show the unique countries in the customers table.", "Give me every country we have customers in.",
        "What are the different countries of our customers?"])
    add("distinct", fill_product(), "SELECT DISTINCT category FROM products", [
        "What product categories do we have?", "List all distinct product categories.",
        "Show the unique categories in the catalog.", "Give me every category we sell in.",
        "What are the different categories of products?"])
    add("distinct", fill_product(), "SELECT DISTINCT status FROM orders", [
        "What order statuses exist?", "List all distinct order statuses.",
        "Show the unique status values for orders.", "Give me every possible order status in the data.",
        "What are the different statuses an order can have?"])
    add("distinct", fill_product("country"), "SELECT DISTINCT city FROM customers WHERE country = '{country}'", [
        "Which cities in {country} do we have customers in?", "List the distinct cities of {country} customers.",
        "Show the unique customer cities within {country}.", "Give me every {country} city with a customer.",
        "What different cities do {country} customers live in?"])
    add("distinct", fill_product("country"), "SELECT DISTINCT signup_year FROM customers WHERE country = '{country}'", [
        "In which years did {country} customers sign up?", "List the distinct signup years for {country}.",
        "Show unique signup years of customers from {country}.",
        "Give me the different years {country} customers joined.",
        "What signup years appear among {country} customers?"])
    add("distinct", fill_product("customer"),
        "SELECT DISTINCT p.category FROM " + COP_JOIN + " JOIN products p ON oi.product_id = p.id WHERE c.name = '{customer}'", [
        "Which categories has {customer} bought from?", "List the distinct categories of {customer}'s purchases.",
        "Show the product categories {customer} has ordered.",
        "Give me the different categories in {customer}'s orders.",
        "What categories does {customer} shop in?"], cap=6)
    add("distinct", fill_product("customer"), "SELECT DISTINCT o.status FROM " + O_JOIN + " WHERE c.name = '{customer}'", [
        "What statuses do {customer}'s orders have?", "List the distinct order statuses for {customer}.",
        "Show the unique statuses among orders from {customer}.",
        "Give me the different statuses of {customer}'s orders.",
        "Which order statuses appear for {customer}?"], cap=6)
    add("distinct", fill_product("country"),
        "SELECT COUNT(DISTINCT city) FROM customers WHERE country = '{country}'", [
        "How many different cities in {country} have customers?",
        "Count the distinct customer cities in {country}.",
        "What's the number of unique cities among {country} customers?",
        "Number of distinct cities for {country}?",
        "In how many cities of {country} do we have customers?"])
    add("distinct", fill_product("category"),
        "SELECT COUNT(DISTINCT oi.order_id) FROM " + P_JOIN + " WHERE p.category = '{category}'", [
        "How many distinct orders include a {category} product?",
        "Count the orders that contain at least one {category} item.",
        "What's the number of unique orders with {category} products?",
        "Number of different orders containing {category} items?",
        "In how many orders does the {category} category appear?"])
    add("distinct", fill_product("year"),
        "SELECT DISTINCT c.country FROM " + CO_JOIN + " WHERE " + YEAR.format(col="o.order_date", year="{year}"), [
        "From which countries did orders come in {year}?", "List the distinct countries of customers who ordered in {year}.",
        "Show unique customer countries with orders in {year}.",
        "Give me the countries we received orders from in {year}.",
        "Which countries had buyers in {year}?"])

    # ---------------- dates ----------------
    add("date", fill_product("year"), "SELECT id FROM orders WHERE " + YEAR.format(col="order_date", year="{year}"), [
        "Which orders were placed in {year}?", "List the ids of all orders from {year}.",
        "Show orders made during {year}.", "Give me every order id in {year}.",
        "What orders came in during {year}?"])
    add("date", fill_product("ym"), "SELECT id, status FROM orders WHERE strftime('%Y-%m', order_date) = '{ym}'", [
        "Which orders were placed in {month}? Show id and status.",
        "List ids and statuses of orders from {month}.",
        "Show orders made during {month} with their status.",
        "Give me the id and status of every order in {month}.",
        "Orders placed in {month}: id and status?"])
    add("date", fill_product("ym"), "SELECT COUNT(*) FROM orders WHERE strftime('%Y-%m', order_date) = '{ym}'", [
        "How many orders were placed in {month}?", "Count the orders from {month}.",
        "What's the number of orders in {month}?", "Number of orders received during {month}?",
        "Give me the order count for {month}."])
    add("date", fill_product("d=date"), "SELECT id FROM orders WHERE order_date = '{d}'", [
        "Which order was placed on {d}?", "What order came in on {d_nice}?",
        "Give me the id of the order from {d_nice}.", "Find orders dated {d}.",
        "Show the order placed on {d_nice}."], cap=6)
    add("date", fill_product("d=date"), "SELECT c.name FROM " + O_JOIN + " WHERE o.order_date = '{d}'", [
        "Who placed an order on {d_nice}?", "Which customer ordered on {d}?",
        "Give me the name of the customer who ordered on {d_nice}.",
        "Name the buyer of the order dated {d}.", "Customer behind the {d} order?"], cap=6)
    add("date", fill_product("d=cal"), "SELECT id, order_date FROM orders WHERE order_date < '{d}'", [
        "Which orders were placed before {d}? Show id and date.",
        "List orders dated earlier than {d_nice}, with dates.",
        "Show ids and dates of orders made prior to {d_nice}.", "Give me id and date of orders before {d}.",
        "Orders placed before {d_nice}: id and date?"], cap=6)
    add("date", fill_product("d=cal"), "SELECT id, order_date FROM orders WHERE order_date > '{d}'", [
        "Which orders were placed after {d}? Show id and date.",
        "List orders dated later than {d_nice}, with dates.",
        "Show ids and dates of orders made after {d_nice}.", "Give me id and date of orders after {d}.",
        "Orders placed after {d_nice}: id and date?"], cap=6)
    add("date", lambda S: [{"d1": a, "d2": b} for i, a in enumerate(S["cal"]) for b in S["cal"][i + 1:i + 6]],
        "SELECT id FROM orders WHERE order_date BETWEEN '{d1}' AND '{d2}'", [
        "Which orders were placed between {d1} and {d2}?",
        "List orders from {d1_nice} to {d2_nice}.",
        "Show order ids dated between {d1_nice} and {d2_nice}.",
        "Give me orders made from {d1} through {d2}.",
        "Orders placed in the period {d1} to {d2}?"], cap=7)
    add("date", lambda S: [{"d1": a, "d2": b} for i, a in enumerate(S["cal"]) for b in S["cal"][i + 2:i + 9]],
        "SELECT COUNT(*) FROM orders WHERE order_date BETWEEN '{d1}' AND '{d2}'", [
        "How many orders were placed between {d1} and {d2}?",
        "Count the orders from {d1_nice} to {d2_nice}.",
        "What's the number of orders dated between {d1_nice} and {d2_nice}?",
        "Number of orders from {d1} through {d2}?",
        "Give me the order count for the period {d1} to {d2}."], cap=7)
    add("date", fill_product("customer", "year"),
        "SELECT o.id, o.order_date FROM " + O_JOIN + " WHERE c.name = '{customer}' AND " + YEAR.format(col="o.order_date", year="{year}"), [
        "Which orders did {customer} place in {year}? Show id and date.",
        "List {customer}'s orders from {year}, with dates.",
        "Show ids and dates of orders by {customer} during {year}.",
        "Give me id and date of {customer}'s {year} orders.",
        "What did {customer} order in {year}? Show order id and date."], cap=7)
    add("date", fill_product("status", "ym"),
        "SELECT id FROM orders WHERE status = '{status}' AND strftime('%Y-%m', order_date) = '{ym}'", [
        "Which {status} orders were placed in {month}?", "List orders from {month} that are {status}.",
        "Show ids of {status} orders made in {month}.", "Give me {month} orders with status {status}.",
        "Orders in {month} marked {status}?"], cap=6)
    add("date", fill_product("ym"),
        "SELECT SUM(oi.quantity * p.price) FROM " + OP_JOIN + " WHERE strftime('%Y-%m', o.order_date) = '{ym}'", [
        "What was the total revenue in {month}?", "How much did we sell in {month}?",
        "Give me total sales for {month}.", "Revenue from orders placed in {month}?",
        "Sum of order value during {month}."], cap=6)
    add("date", fill_product("d=cal"),
        "SELECT DISTINCT c.name FROM " + CO_JOIN + " WHERE o.order_date >= '{d}'", [
        "Which customers have ordered since {d}?", "List customers with orders on or after {d_nice}.",
        "Show the names of customers who ordered from {d_nice} onward.",
        "Give me customers with an order dated {d} or later.",
        "Who has placed an order on or after {d_nice}?"], cap=6)

    # ---------------- subqueries ----------------
    add("subquery", fill_product(), "SELECT name FROM products WHERE price > (SELECT AVG(price) FROM products)", [
        "Which products cost more than the average price?", "List products priced above average.",
        "Show products more expensive than the mean product price.",
        "Give me products whose price exceeds the overall average.",
        "What products are pricier than average?"])
    add("subquery", fill_product(), "SELECT name FROM products WHERE price < (SELECT AVG(price) FROM products)", [
        "Which products cost less than the average price?", "List products priced below average.",
        "Show products cheaper than the mean product price.",
        "Give me products whose price is under the overall average.",
        "What products are cheaper than average?"])
    add("subquery", fill_product("category"),
        "SELECT name FROM products WHERE category = '{category}' AND price > (SELECT AVG(price) FROM products WHERE category = '{category}')", [
        "Which {category} products cost more than the {category} average?",
        "List {category} items priced above their category average.",
        "Show products in {category} that are pricier than the average {category} product.",
        "Give me above-average priced {category} products."])
    add("subquery", fill_product(), "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)", [
        "Which customers have never placed an order?", "List customers with no orders.",
        "Show customers who have not ordered anything.", "Give me the names of customers without any orders.",
        "Who has never bought from us?"])
    add("subquery", fill_product(), "SELECT name FROM products WHERE id NOT IN (SELECT product_id FROM order_items)", [
        "Which products have never been ordered?", "List products that were never sold.",
        "Show products that don't appear in any order.", "Give me the products with zero orders.",
        "What items has nobody bought?"])
    add("subquery", fill_product(), "SELECT COUNT(*) FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)", [
        "How many customers have never ordered?", "Count the customers with no orders.",
        "What's the number of customers who never bought anything?",
        "Number of customers without a single order?", "Give me the count of inactive customers with zero orders."])
    add("subquery", fill_product("product"),
        "SELECT name FROM products WHERE price < (SELECT price FROM products WHERE name = '{product}')", [
        "Which products are cheaper than the {product}?", "List products priced below {product}.",
        "Show products that cost less than {product}.", "Give me products with a lower price than the {product}.",
        "What costs less than a {product}?"])
    add("subquery", fill_product("product"),
        "SELECT name FROM products WHERE price > (SELECT price FROM products WHERE name = '{product}')", [
        "Which products are more expensive than the {product}?", "List products priced above {product}.",
        "Show products that cost more than {product}.", "Give me products with a higher price than the {product}.",
        "What costs more than a {product}?"])
    add("subquery", fill_product("product"),
        "SELECT name FROM products WHERE category = (SELECT category FROM products WHERE name = '{product}') AND name <> '{product}'", [
        "Which other products are in the same category as {product}?",
        "List products sharing a category with the {product}, excluding it.",
        "Show the other items in {product}'s category.",
        "Give me products from the same category as {product}, not counting it."])
    add("subquery", fill_product("customer"),
        "SELECT name FROM customers WHERE city = (SELECT city FROM customers WHERE name = '{customer}') AND name <> '{customer}'", [
        "Which other customers live in the same city as {customer}?",
        "List customers from {customer}'s city, excluding {customer}.",
        "Who else lives in the same city as {customer}?",
        "Give me the other customers based in {customer}'s city."])
    add("subquery", fill_product("customer"),
        "SELECT name FROM customers WHERE signup_year = (SELECT signup_year FROM customers WHERE name = '{customer}') AND name <> '{customer}'", [
        "Which other customers signed up in the same year as {customer}?",
        "List customers who joined the same year as {customer}, excluding them.",
        "Who else registered in {customer}'s signup year?",
        "Give me the other customers with the same signup year as {customer}."], cap=6)
    add("subquery", fill_product("category"),
        "SELECT name FROM products WHERE price > (SELECT MAX(price) FROM products WHERE category = '{category}')", [
        "Which products cost more than every {category} product?",
        "List products priced above the most expensive {category} item.",
        "Show products pricier than anything in {category}.",
        "Give me products more expensive than the top {category} price."])
    add("subquery", fill_product("category"),
        "SELECT name FROM customers WHERE id IN (SELECT o.customer_id FROM " + OP_JOIN + " WHERE p.category = '{category}')", [
        "Which customers have bought something from {category}?",
        "List customers who ordered at least one {category} product.",
        "Show the names of customers with a {category} purchase.",
        "Give me customers who have purchased {category} items.",
        "Who has ordered from the {category} category?"])
    add("subquery", fill_product("city"),
        "SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE city = '{city}') AND status = 'delivered'", [
        "Which orders from {city} customers have been delivered?",
        "List delivered orders placed by customers in {city}.",
        "Show ids of delivered orders from {city}.",
        "Give me the {city} orders that are delivered.",
        "Delivered orders of customers living in {city}?"], cap=6)
    add("subquery", fill_product(), "SELECT name, price FROM products WHERE price = (SELECT MAX(price) FROM products)", [
        "Which product has the highest price, and what is it?",
        "Give me the name and price of the product with the maximum price.",
        "Show the name and price of the product with the top price.",
        "What's the priciest product and its price?"])
    add("subquery", fill_product(), "SELECT id FROM orders WHERE id NOT IN (SELECT order_id FROM order_items WHERE quantity > 1)", [
        "Which orders contain only single units of each product?",
        "List orders where every item has quantity 1.",
        "Show orders with no line item quantity above one.",
        "Give me the orders in which each product was bought just once."])
    return I


# ----------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------
def norm_q(q):
    q = q.lower()
    q = "".join(ch if ch not in string.punctuation else " " for ch in q)
    return " ".join(q.split())


def valid(con, query, tie_sql=None, n=None):
    try:
        rows = con.execute(query).fetchall()
    except sqlite3.Error as e:
        raise RuntimeError(f"bad query: {query}: {e}")
    if not rows:
        return False
    if len(rows) == 1 and all(v is None or v == 0 for v in rows[0]):
        return False  # uninformative aggregate (0 / NULL)
    if tie_sql is not None:
        keys = [r[0] for r in con.execute(tie_sql)]
        if len(keys) < n or (len(keys) > n and keys[n - 1] == keys[n]):
            return False  # fewer groups than asked, or a tie at the LIMIT cut-off
    return True


KEYWORDS = ["select", "from", "where", "join", "on", "group by", "order by", "having", "limit",
            "and", "or", "in", "not", "like", "between", "distinct", "desc", "count", "sum",
            "avg", "min", "max", "as"]


def style_ok(q):
    assert "  " not in q and q == q.strip() and not q.endswith(";"), q
    bare = re.sub(r"'[^']*'", "''", q)
    for kw in KEYWORDS:
        if re.search(r"\b" + kw.replace(" ", r"\s+") + r"\b", bare):
            raise AssertionError(f"lowercase keyword {kw!r} in {q}")
    return True


def sql_tokens(q):
    return re.findall(r"'[^']*'|\w+|[^\w\s]", q)


def generate(con, rng, cap_default=5):
    S = load_slots(con, rng)
    out, seen_q, seen_pair = [], set(), set()
    fam_counts = collections.Counter()
    tmpl_counts = collections.Counter()
    for it in intents():
        fills = it["gen"](S)
        rng.shuffle(fills)
        good = []
        for f in fills:
            q = it["query"].format(**derive(f))
            if valid(con, q, it["tie"].format(**derive(f)) if it["tie"] else None, f.get("n", 1)):
                good.append((f, q))
        if not good:
            raise RuntimeError(f"no valid filling for {it['query']}")
        T = it["questions"]
        cap = it["cap"] or cap_default
        n_max = min(len(good) * len(T), cap * len(T))
        taken = 0
        for r in range(len(T)):
            for j, (f, q) in enumerate(good):
                if taken >= n_max:
                    break
                t = (j + r) % len(T)
                question = T[t].format(**derive(f))
                key = norm_q(question)
                if key in seen_q or (question, q) in seen_pair:
                    continue
                seen_q.add(key)
                seen_pair.add((question, q))
                out.append({"question": question, "query": q})
                fam_counts[it["family"]] += 1
                tmpl_counts[(it["query"], T[t])] += 1
                taken += 1
    rng.shuffle(out)
    return out, fam_counts, tmpl_counts


def verify(rows, db_path):
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    qs, pairs = set(), set()
    for r in rows:
        assert set(r) == {"question", "query"}
        res = con.execute(r["query"]).fetchall()
        assert len(res) >= 1, r
        style_ok(r["query"])
        k = norm_q(r["question"])
        assert k not in qs, f"duplicate question: {r['question']}"
        qs.add(k)
        p = (r["question"], r["query"])
        assert p not in pairs
        pairs.add(p)
    con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    build_db(rng, DB_PATH)
    schema_text = write_schema(SCHEMA_PATH)

    con = sqlite3.connect(f"file:{DB_PATH}?mode=ro", uri=True)
    rows, fams, tmpls = generate(con, rng)
    con.close()

    verify(rows, DB_PATH)
    assert len(rows) >= 1300, len(rows)
    top_tmpl, top_n = tmpls.most_common(1)[0]
    assert top_n / len(rows) <= 0.05, (top_tmpl, top_n)

    fd, tmp = tempfile.mkstemp(suffix=".jsonl", dir=HERE)
    with os.fdopen(fd, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUT_PATH)

    # ---- summary ----
    qw = [len(r["question"].split()) for r in rows]
    ql = [len(r["query"]) for r in rows]
    qt = [len(sql_tokens(r["query"])) for r in rows]
    qws = [len(r["query"].split()) for r in rows]
    con = sqlite3.connect(f"file:{DB_PATH}?mode=ro", uri=True)
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("customers", "products", "orders", "order_items")}
    con.close()
    prefix3 = collections.Counter(" ".join(r["question"].split()[:3]).lower() for r in rows)
    print(f"examples: {len(rows)}  (intents: {len(intents())}, question templates: {len(tmpls)})")
    print("per family:", dict(sorted(fams.items(), key=lambda kv: -kv[1])))
    print(f"median question words: {statistics.median(qw)}  (<20 words: {sum(w < 20 for w in qw) / len(qw):.1%}, max {max(qw)})")
    print(f"median query chars: {statistics.median(ql)}  (max {max(ql)})")
    print(f"query tokens (regex) median {statistics.median(qt)}, <30: {sum(t < 30 for t in qt) / len(qt):.1%}; "
          f"whitespace words median {statistics.median(qws)}, <30: {sum(t < 30 for t in qws) / len(qws):.1%}")
    print(f"most used question template: {top_n} ({top_n / len(rows):.1%}): {top_tmpl[1]!r}")
    print("top 3-word question prefixes:", [(p, n, f"{n / len(rows):.1%}") for p, n in prefix3.most_common(5)])
    print("table rows:", counts)
    print(f"db size: {os.path.getsize(DB_PATH)} bytes; schema words: {len(schema_text.split())}")
    print(f"wrote {OUT_PATH}")


if __name__ == "__main__":
    sys.exit(main())
